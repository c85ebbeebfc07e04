"""Run every doctor check, print one line each, and turn the verdicts into an exit code.

Settings are validated first; when they are invalid, each error is printed (the setting's name and what is
wrong, never its value) and the other checks are skipped. Each check runs in a daemon thread bounded by the
timeout, on top of the timeouts each client is given, so an upstream that never answers costs one line, not
a hung command.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import ValidationError

from app.doctor.checks import (
    check_broker,
    check_business,
    check_database,
    check_openai,
    check_twilio_account,
    check_twilio_number,
)
from app.doctor.result import CheckResult, fail, ok, skip
from app.doctor.settings_check import describe_validation_error
from app.settings import MissingSettingError, Settings, load_settings

Check = Callable[[Settings, float], CheckResult]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("openai", check_openai),
    ("twilio account", check_twilio_account),
    ("twilio number", check_twilio_number),
    ("business api", check_business),
    ("database", check_database),
    ("broker", check_broker),
)


def run_check(name: str, check: Check, settings: Settings, timeout: float) -> CheckResult:
    """One check, bounded by `timeout` (plus a second of grace); a crash or a hang is a failure."""
    box: list[CheckResult] = []

    def target() -> None:
        try:
            box.append(check(settings, timeout))
        except MissingSettingError as exc:
            box.append(fail(name, str(exc)))
        except Exception as exc:  # a check's own bug must still print one line
            box.append(fail(name, f"the check itself failed ({type(exc).__name__})"))

    thread = threading.Thread(target=target, name=f"doctor-{name}", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return box[0] if box else fail(name, f"no answer within {timeout:g} s")


def run_doctor(
    *,
    timeout_seconds: float = 5.0,
    out: Callable[[str], None] = print,
    load: Callable[[], Settings] = load_settings,
) -> int:
    """Print one line per check; 0 if nothing failed, 1 otherwise."""
    try:
        settings = load()
    except ValidationError as exc:
        for problem in describe_validation_error(exc):
            out(fail("settings", problem).line())
        for name, _ in CHECKS:
            out(skip(name, "not run: the settings are invalid").line())
        return 1
    out(ok("settings", "all valid").line())
    failed = 0
    for name, check in CHECKS:
        result = run_check(name, check, settings, timeout_seconds)
        out(result.line())
        failed += result.verdict == "FAIL"
    return 1 if failed else 0
