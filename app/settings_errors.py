"""Bad settings, told to an operator: one line per setting, naming the variable and what it accepts.

Every command (`voice-agent ...`, `python -m workers.cli ...`) runs inside `settings_guard`, so a setting
pydantic rejects (`MAX_CALL_SECONDS=abc`) or a command refuses (`serve` with no `BUSINESS_API_BASE`) ends it
with exit status 2 and those lines on stderr: never a traceback. The value given is not repeated, since a
misplaced secret would land in the terminal and in whatever collects its output.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from app.settings import Settings, SettingsError

EXIT_BAD_SETTINGS = 2
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def _variable(location: tuple[Any, ...]) -> str | None:
    if not location:
        return None
    name = str(location[0])
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    return (alias if isinstance(alias, str) else name).upper()


def _accepts(message: str) -> str:
    for prefix in _PYDANTIC_PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def describe_invalid_settings(error: ValidationError) -> list[str]:
    """One line per rejected setting: `NAME: what it accepts`, or the rule's own sentence for cross-checks."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        variable = _variable(tuple(problem.get("loc", ())))
        message = _accepts(str(problem.get("msg", "invalid")))
        lines.append(f"{variable}: {message}" if variable else message)
    return lines


def settings_guard(prog: str, command: Callable[[], int]) -> int:
    """Run `command`; bad or refused settings print their lines to stderr and give exit status 2."""
    try:
        return command()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        lines = describe_invalid_settings(exc)
    except SettingsError as exc:
        lines = exc.problems
    for line in lines:
        print(f"{prog}: {line}", file=sys.stderr)
    return EXIT_BAD_SETTINGS
