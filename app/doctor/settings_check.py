"""Settings validation errors as lines an operator can act on, without the values (they may be secrets)."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per error: the setting's environment name and pydantic's message, never the input value."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        location = [str(part) for part in error.get("loc", ()) if str(part)]
        name = "_".join(location).upper() if location else "settings"
        lines.append(f"{name}: {error.get('msg', 'invalid')}")
    return lines
