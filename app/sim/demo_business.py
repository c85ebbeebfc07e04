"""A small demo business backend (a dental office) that speaks the contract in docs/business-api.yaml.

It answers when `BUSINESS_API_BASE` is unset, and the tests use it as the simulated backend. State is in
memory. `python -m app.sim.demo_business --port 9200` serves it on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.functions.business import BusinessBackend, make_business_backend
from app.settings import Settings

OPENING_HOURS: dict[int, tuple[str, str] | None] = {
    0: ("09:00", "17:00"),
    1: ("09:00", "17:00"),
    2: ("09:00", "19:00"),
    3: ("09:00", "17:00"),
    4: ("09:00", "16:00"),
    5: ("10:00", "14:00"),
    6: None,
}
SERVICES_MINUTES = {"cleaning": 60, "checkup": 30, "whitening": 90, "emergency": 30}
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


def create_demo_business_app(*, timezone: str = "America/New_York") -> FastAPI:
    """A fresh demo backend with an empty appointment book."""
    zone = ZoneInfo(timezone)
    app = FastAPI(title="Demo business backend", version="1.0.0")
    booked: dict[dt.datetime, dict[str, Any]] = {}

    def slots_for(day: dt.date, service: str) -> list[dt.datetime]:
        hours = OPENING_HOURS[day.weekday()]
        if hours is None:
            return []
        opens = dt.datetime.combine(day, dt.time.fromisoformat(hours[0]), zone)
        closes = dt.datetime.combine(day, dt.time.fromisoformat(hours[1]), zone)
        length = dt.timedelta(minutes=SERVICES_MINUTES[service])
        slots, start = [], opens
        while start + length <= closes:
            taken = any(start <= t < start + length or t <= start < t + _length(b) for t, b in booked.items())
            if not taken:
                slots.append(start)
            start += dt.timedelta(minutes=SLOT_MINUTES)
        return slots

    def _length(booking: dict[str, Any]) -> dt.timedelta:
        return dt.timedelta(minutes=SERVICES_MINUTES[booking["service"]])

    @app.get("/hours")
    async def hours(date: str = Query(...)) -> JSONResponse:
        day = _parse_date(date)
        if day is None:
            return _error(422, "bad_date", "Use a date like 2026-11-24.")
        window = OPENING_HOURS[day.weekday()]
        body: dict[str, Any] = {"date": day.isoformat(), "weekday": day.strftime("%A"), "timezone": timezone}
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
        if service not in SERVICES_MINUTES:
            return _error(422, "unknown_service", "We do not offer that.", services=sorted(SERVICES_MINUTES))
        slots = [slot.isoformat() for slot in slots_for(day, service)]
        return JSONResponse({"date": day.isoformat(), "service": service, "slots": slots[:12]})

    @app.post("/appointments")
    async def book(request: AppointmentRequest) -> JSONResponse:
        if request.service not in SERVICES_MINUTES:
            return _error(422, "unknown_service", "We do not offer that.", services=sorted(SERVICES_MINUTES))
        start = request.start if request.start.tzinfo else request.start.replace(tzinfo=zone)
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
    args = parser.parse_args()
    uvicorn.run(create_demo_business_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
