"""Strict validation of Realtime events against the openai SDK's own pydantic models.

The SDK never validates what it receives (unknown types and missing fields pass silently) and its models
allow extra keys, so a fake server or a relay speaking a beta dialect would go unnoticed. Here every event
is validated in pydantic strict mode against the class its `type` names, and any key the model does not
declare, at any depth, is reported as an unknown parameter.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

__all__ = [
    "ServerEventInvalid",
    "client_event_problems",
    "server_event_problems",
]

# Keys the real service sends that the SDK's models do not declare (A2: the session object it reports
# carries `object`, `id` and `expires_at`; the SDK reuses the *request* model for session.created/updated).
_KNOWN_SERVER_EXTRAS: dict[str, frozenset[str]] = {
    "RealtimeSessionCreateRequest": frozenset({"object", "id", "expires_at"}),
}


class ServerEventInvalid(AssertionError):
    """The simulator tried to send an event the SDK's models reject: a bug in the simulator."""


def _event_classes(union: object) -> dict[str, type[pydantic.BaseModel]]:
    members = typing.get_args(typing.get_args(union)[0])
    table: dict[str, type[pydantic.BaseModel]] = {}
    for member in members:
        (literal,) = typing.get_args(member.model_fields["type"].annotation)
        table[literal] = member
    return table


@cache
def server_event_classes() -> dict[str, type[pydantic.BaseModel]]:
    """Map each GA server event `type` to its SDK model class."""
    return _event_classes(RealtimeServerEvent)


@cache
def client_event_classes() -> dict[str, type[pydantic.BaseModel]]:
    """Map each GA client event `type` to its SDK model class."""
    return _event_classes(RealtimeClientEvent)


def _format_location(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _unknown_keys(
    value: object, path: str, allowed_extras: dict[str, frozenset[str]], found: list[str]
) -> None:
    """Collect dotted paths of keys a validated model kept as extras (i.e. keys the SDK does not know)."""
    if isinstance(value, pydantic.BaseModel):
        tolerated = allowed_extras.get(type(value).__name__, frozenset())
        for key in value.model_extra or {}:
            if key not in tolerated:
                found.append(f"{path}.{key}" if path else key)
        for name in type(value).model_fields:
            _unknown_keys(getattr(value, name), f"{path}.{name}" if path else name, allowed_extras, found)
    elif isinstance(value, list):
        for index, element in enumerate(value):
            _unknown_keys(element, f"{path}[{index}]", allowed_extras, found)


def _problems(
    payload: object,
    classes: dict[str, type[pydantic.BaseModel]],
    allowed_extras: dict[str, frozenset[str]],
) -> list[str]:
    if not isinstance(payload, dict):
        return ["The event must be a JSON object."]
    event_type = payload.get("type")
    if not isinstance(event_type, str):
        return ["The 'type' field is missing."]
    event_class = classes.get(event_type)
    if event_class is None:
        return [f"Invalid value: '{event_type}'. This is not a known GA event type."]
    try:
        model = event_class.model_validate(payload, strict=True)
    except pydantic.ValidationError as exc:
        return [
            f"{event_type}: {_format_location(error['loc']) or '<event>'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
    unknown: list[str] = []
    _unknown_keys(model, "", allowed_extras, unknown)
    return [f"Unknown parameter: '{key}'." for key in unknown]


def client_event_problems(payload: object) -> list[str]:
    """Return why `payload` is not a valid GA client event (empty list when it is)."""
    return _problems(payload, client_event_classes(), {})


def server_event_problems(payload: object) -> list[str]:
    """Return why `payload` is not a valid GA server event (empty list when it is)."""
    return _problems(payload, server_event_classes(), _KNOWN_SERVER_EXTRAS)


def check_server_event(payload: dict[str, Any]) -> None:
    """Raise `ServerEventInvalid` when the simulator is about to send an invalid event."""
    problems = server_event_problems(payload)
    if problems:
        raise ServerEventInvalid(f"simulator produced an invalid {payload.get('type')!r}: {problems}")
