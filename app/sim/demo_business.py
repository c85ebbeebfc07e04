"""A small demo business backend that speaks the contract in docs/business-api.yaml.

Two profiles (app/sim/demo_profiles.py): a dental office (the default) and a hair salon. It answers when
`BUSINESS_API_BASE` is unset, and the tests use it as the simulated backend. State is in memory.
`python -m app.sim.demo_business --port 9200 [--business salon]` serves it on its own.

Every refusal uses the contract's `{"error": {"code", "message"}}`, including requests the framework itself
rejects (a missing parameter, a malformed body), which FastAPI would otherwise answer with its own
`{"detail": ...}`; tests/unit/test_business_contract.py checks the whole API against the spec.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.functions.business import BusinessBackend, make_business_backend
from app.settings import Settings
from app.sim.demo_profiles import DENTAL, PROFILES, DemoProfile

SLOT_MINUTES = 30


class AppointmentRequest(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=3, max_length=32)
    service: str
    start: dt.datetime


def _error(status: int, code: str, message: str, **detail: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **detail}}, status_code=status)


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _bookable(start: dt.datetime) -> bool:
    # Converting a start in year 1 or 9999 between time zones overflows; nobody books there anyway.
    return 1900 <= start.year <= 9000


def _bad_request(_request: Request, exc: Exception) -> JSONResponse:
    fields = []
    if isinstance(exc, RequestValidationError):
        fields = sorted({".".join(str(part) for part in error.get("loc", ())) for error in exc.errors()})
    message = "The request is missing fields or has wrong values" + (
        f": {', '.join(fields)}." if fields else "."
    )
    return _error(422, "bad_request", message)


def _framework_error(request: Request, exc: Exception) -> JSONResponse:
    """The framework's own refusals in the contract's shape; an unparseable body is a bad request (422)."""
    if not isinstance(exc, StarletteHTTPException) or exc.status_code == 400:
        return _bad_request(request, exc)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "refused")
    response = _error(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


def create_demo_business_app(*, timezone: str | None = None, profile: DemoProfile = DENTAL) -> FastAPI:
    """A fresh demo backend for `profile` with an empty appointment book."""
    zone_name = timezone or profile.timezone
    zone = ZoneInfo(zone_name)
    minutes = profile.minutes()
    app = FastAPI(title=f"Demo business backend ({profile.kind})", version="1.0.0")
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(StarletteHTTPException, _framework_error)
    booked: dict[dt.datetime, dict[str, Any]] = {}

    def length(service: str) -> dt.timedelta:
        return dt.timedelta(minutes=minutes[service])

    def slots_for(day: dt.date, service: str) -> list[dt.datetime]:
        hours = profile.hours[day.weekday()]
        if hours is None or day < dt.datetime.now(zone).date():  # the past has no free slots
            return []
        opens = dt.datetime.combine(day, dt.time.fromisoformat(hours[0]), zone)
        closes = dt.datetime.combine(day, dt.time.fromisoformat(hours[1]), zone)
        slots, start = [], opens
        while start + length(service) <= closes:
            end = start + length(service)
            taken = any(start <= t < end or t <= start < t + length(b["service"]) for t, b in booked.items())
            if not taken:
                slots.append(start)
            start += dt.timedelta(minutes=SLOT_MINUTES)
        return slots

    def unknown_service() -> JSONResponse:
        # 404, not 422: the request is well formed, the service just does not exist here.
        return _error(404, "unknown_service", "We do not offer that.", services=sorted(minutes))

    @app.get("/services")
    async def services() -> JSONResponse:
        offered = [{"id": s.id, "name": s.name, "minutes": s.minutes} for s in profile.services]
        return JSONResponse({"services": offered})

    @app.get("/hours")
    async def hours(date: str = Query(...)) -> JSONResponse:
        day = _parse_date(date)
        if day is None:
            return _error(422, "bad_date", "Use a date like 2026-11-24.")
        window = profile.hours[day.weekday()]
        body: dict[str, Any] = {"date": day.isoformat(), "weekday": day.strftime("%A"), "timezone": zone_name}
        if window is None:
            body["closed"] = True
        else:
            body.update({"closed": False, "open": window[0], "close": window[1]})
        return JSONResponse(body)

    @app.get("/availability")
    async def availability(date: str = Query(...), service: str = Query(...)) -> JSONResponse:
        day = _parse_date(date)
        if day is None:
            return _error(422, "bad_date", "Use a date like 2026-11-24.")
        if service not in minutes:
            return unknown_service()
        slots = [slot.isoformat() for slot in slots_for(day, service)]
        return JSONResponse({"date": day.isoformat(), "service": service, "slots": slots[:12]})

    @app.post("/appointments")
    async def book(request: AppointmentRequest) -> JSONResponse:
        if request.service not in minutes:
            return unknown_service()
        start = request.start if request.start.tzinfo else request.start.replace(tzinfo=zone)
        if not _bookable(start):
            return _error(409, "slot_taken", "That time is not available.", alternatives=[])
        start = start.astimezone(zone)
        if start not in slots_for(start.date(), request.service):
            free = [s.isoformat() for s in slots_for(start.date(), request.service)][:3]
            return _error(409, "slot_taken", "That time is not available.", alternatives=free)
        confirmation = f"BK{len(booked) + 1001}"
        booked[start] = {"service": request.service, "name": request.name, "phone": request.phone}
        return JSONResponse(
            {"confirmation": confirmation, "service": request.service, "start": start.isoformat()},
            status_code=201,
        )

    return app


def demo_backend(settings: Settings) -> BusinessBackend:
    """The demo office as the relay's business backend, in-process (for the demo, dev and tests only)."""
    app = create_demo_business_app(timezone=settings.business_timezone)
    return make_business_backend(settings, transport=httpx.ASGITransport(app=app))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the demo business backend.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--business", choices=sorted(PROFILES), default="dental")
    args = parser.parse_args()
    uvicorn.run(create_demo_business_app(profile=PROFILES[args.business]), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
