"""Tools for the business's day: opening hours, free slots, booking an appointment."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from app.functions.business import BusinessBackend
from app.functions.registry import Tool, ToolContext, ToolError
from app.functions.services import ServiceCatalog

_DATE_HELP = "A date as YYYY-MM-DD, or 'today' / 'tomorrow'. Defaults to today."


def _resolve_date(value: object, zone: ZoneInfo) -> str:
    today = dt.datetime.now(zone).date()
    text = str(value or "today").strip().lower()
    if text == "today":
        return today.isoformat()
    if text == "tomorrow":
        return (today + dt.timedelta(days=1)).isoformat()
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ToolError("bad_date", "Please give the date as year-month-day.") from None


def booking_tools(backend: BusinessBackend, catalog: ServiceCatalog, *, timezone: str) -> list[Tool]:
    """lookup_hours, check_availability and book_appointment, bound to one backend; the `service`
    argument offers the catalog's services as they are when each session opens."""
    zone = ZoneInfo(timezone)

    async def lookup_hours(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await backend.hours(_resolve_date(args.get("date"), zone))

    async def check_availability(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await backend.availability(_resolve_date(args.get("date"), zone), str(args["service"]))

    async def book_appointment(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        phone = str(args.get("phone") or ctx.caller_number or "")
        if not phone:
            raise ToolError("missing_arguments", "I need a phone number for the booking.", missing=["phone"])
        return await backend.book(
            name=str(args["name"]), phone=phone, service=str(args["service"]), start=str(args["start"])
        )

    def availability_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "date": {"type": "string", "description": _DATE_HELP},
                "service": catalog.service_schema(),
            },
            "required": ["service"],
            "additionalProperties": False,
        }

    def booking_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The caller's full name."},
                "phone": {"type": "string", "description": "Callback number, if not the caller's own."},
                "service": catalog.service_schema(),
                "start": {"type": "string", "description": "Start time, ISO 8601 with offset."},
            },
            "required": ["name", "service", "start"],
            "additionalProperties": False,
        }

    return [
        Tool(
            "lookup_hours",
            "Opening hours for a date. Use before answering any question about when we are open.",
            {
                "type": "object",
                "properties": {"date": {"type": "string", "description": _DATE_HELP}},
                "additionalProperties": False,
            },
            lookup_hours,
        ),
        Tool(
            "check_availability",
            "Free appointment start times for a service on a date.",
            availability_schema,
            check_availability,
        ),
        Tool(
            "book_appointment",
            "Book an appointment. Confirm name, service and time with the caller first. The caller's own "
            "number is used when no phone is given.",
            booking_schema,
            book_appointment,
        ),
    ]
