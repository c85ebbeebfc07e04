"""The business backend the tools talk to (contract: docs/business-api.yaml).

`GET /hours?date=YYYY-MM-DD`, `GET /availability?date=...&service=...`, `POST /appointments`, each with
`Authorization: Bearer <BUSINESS_API_TOKEN>` when a token is set. There is no fallback: with no
`BUSINESS_API_BASE` the relay refuses to start rather than book appointments that exist nowhere. The demo
office (app/sim/demo_business.py) is wired in by the demo and dev commands only, through `transport`, so
there is one code path whether the business is real or the demo.
"""

from __future__ import annotations

from collections.abc import Callable
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
from app.settings import DEMO_BUSINESS, MissingSettingError, Settings

BackendFactory = Callable[[Settings], "BusinessBackend"]


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


def make_business_backend(
    settings: Settings,
    *,
    timeout: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BusinessBackend:
    """The backend at `BUSINESS_API_BASE`, or the app behind `transport` (the demo office) when given."""
    limit = httpx.Timeout(timeout or settings.tool_timeout_seconds)
    headers = {}
    if settings.business_api_token is not None:
        headers["Authorization"] = f"Bearer {settings.business_api_token.get_secret_value()}"
    base = settings.business_api_base
    if transport is not None:
        base = "http://demo-business"
    elif base is None or base == DEMO_BUSINESS:
        raise MissingSettingError(
            "BUSINESS_API_BASE", "the relay needs the business backend's URL (the demo office only in `demo`)"
        )
    client = httpx.AsyncClient(base_url=base, transport=transport, headers=headers, timeout=limit)
    return BusinessBackend(client)
