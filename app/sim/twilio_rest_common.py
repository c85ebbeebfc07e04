"""What the simulated Twilio REST API's resources share: recorded requests, error JSON, timestamps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import Request
from fastapi.responses import JSONResponse

API_PREFIX = "/2010-04-01/Accounts/{account_sid}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulated API received. ``form`` keeps the last value of each field, ``multi`` all."""

    method: str
    path: str
    form: dict[str, str]
    multi: dict[str, list[str]] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


# Records the request and applies the simulator's delay, auth and failure knobs: (form, refusal or None).
Admit = Callable[[Request, str], Awaitable[tuple[dict[str, str], JSONResponse | None]]]


def now_rfc2822() -> str:
    """Twilio's timestamp format (RFC 2822, UTC)."""
    return format_datetime(datetime.now(UTC))


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """Twilio's error body (``{"code", "message", "more_info", "status"}``); the SDK raises on it."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


def not_found(sid: str) -> JSONResponse:
    """The 20404 answer for a resource the account does not have."""
    return twilio_error(404, 20404, f"The requested resource {sid} was not found")
