"""The business backend the tools talk to (contract: docs/business-api.yaml).

`GET /hours?date=YYYY-MM-DD`, `GET /availability?date=...&service=...`, `POST /appointments`. When
`BUSINESS_API_BASE` is unset the built-in demo backend answers in-process through the same HTTP client, so
there is one code path whether the business is real or the demo.
"""

from __future__ import annotations

from typing import Any

import httpx

from app.functions.business_answers import (
    AvailabilityAnswer,
    BookingAnswer,
    HoursAnswer,
    Service,
    ServicesAnswer,
    validated,
)
from app.functions.registry import ToolError
from app.settings import Settings


class BusinessBackend:
    """Async client for the business API. Errors become `ToolError`s the model can voice."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def hours(self, date: str) -> dict[str, Any]:
        payload = await self._call("GET", "/hours", params={"date": date})
        return _checked(HoursAnswer, payload)

    async def availability(self, date: str, service: str) -> dict[str, Any]:
        payload = await self._call("GET", "/availability", params={"date": date, "service": service})
        return _checked(AvailabilityAnswer, payload)

    async def book(self, *, name: str, phone: str, service: str, start: str) -> dict[str, Any]:
        body = {"name": name, "phone": phone, "service": service, "start": start}
        return _checked(BookingAnswer, await self._call("POST", "/appointments", json=body))

    async def services(self) -> list[Service]:
        """The business's services (`GET /services`), validated; raises `ToolError` like the tools."""
        return validated(ServicesAnswer, await self._call("GET", "/services")).services

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ToolError("backend_timeout", "The booking system is not answering right now.") from None
        except httpx.HTTPError:
            raise ToolError("backend_unavailable", "The booking system cannot be reached now.") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code >= 500:
            raise ToolError("backend_unavailable", "The booking system had a problem.")
        if response.status_code >= 400:
            detail = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(detail, dict) and isinstance(detail.get("code"), str):
                extra = {k: v for k, v in detail.items() if k not in ("code", "message")}
                raise ToolError(detail["code"], str(detail.get("message", "Request refused.")), **extra)
            raise ToolError("rejected", f"The booking system refused the request ({response.status_code}).")
        if not isinstance(payload, dict):
            raise ToolError("backend_unavailable", "The booking system answered something unexpected.")
        return payload


def _checked(
    model: type[HoursAnswer | AvailabilityAnswer | BookingAnswer], payload: dict[str, Any]
) -> dict[str, Any]:
    """A successful answer, once it has the contract's shape (app/functions/business_answers.py), as the
    tool passes it on (extra fields kept); off-contract answers raise `ToolError("backend_bad_answer")`."""
    return validated(model, payload).model_dump(exclude_none=True)


def make_business_backend(settings: Settings, *, timeout: float | None = None) -> BusinessBackend:
    """The configured backend, or the built-in demo one when `BUSINESS_API_BASE` is unset."""
    limit = httpx.Timeout(timeout or settings.tool_timeout_seconds)
    if settings.business_api_base:
        client = httpx.AsyncClient(base_url=settings.business_api_base, timeout=limit)
    else:
        from app.sim.demo_business import create_demo_business_app

        app = create_demo_business_app(timezone=settings.business_timezone)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://demo-business", timeout=limit
        )
    return BusinessBackend(client)
