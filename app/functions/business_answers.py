"""The business backend's answers, as the contract (docs/business-api.yaml) defines them.

A backend is someone else's code: it may answer with the wrong types, leave fields out, or put an HTML error
page behind a 200. Every successful answer is validated here before a tool hands it to the model, and one
that is off-contract becomes a structured `ToolError` (`backend_bad_answer`) the agent can voice, instead of
nonsense read to a caller or a crash in the tool.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.functions.registry import ToolError


class _Answer(BaseModel):
    # Extra fields are the backend's business: kept and passed on; wrong types are never coerced.
    model_config = ConfigDict(extra="allow", strict=True)


class HoursAnswer(_Answer):
    date: str
    closed: bool
    weekday: str | None = None
    timezone: str | None = None
    open: str | None = None
    close: str | None = None


class AvailabilityAnswer(_Answer):
    date: str
    service: str
    slots: list[str]


class BookingAnswer(_Answer):
    confirmation: str = Field(min_length=1)
    service: str
    start: str


class Service(_Answer):
    """One thing the business offers: `id` goes into bookings, `name` is what callers hear."""

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    minutes: int = Field(gt=0)


class ServicesAnswer(_Answer):
    services: list[Service]


AnswerT = TypeVar("AnswerT", bound=_Answer)


def validated(model: type[AnswerT], payload: dict[str, Any]) -> AnswerT:
    """`payload` as `model`, or a `backend_bad_answer` ToolError naming the fields that were wrong."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) or "body" for error in exc.errors()})
        raise ToolError(
            "backend_bad_answer",
            "The booking system answered something unexpected.",
            fields=fields[:10],
        ) from None
