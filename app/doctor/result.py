"""One check's verdict, as `voice-agent doctor` prints it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["ok", "FAIL", "skip"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found. `detail` never carries a secret (keys, tokens, passwords in URLs)."""

    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.verdict:<4}  {self.name:<16} {self.detail}"


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "ok", detail)


def fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "FAIL", detail)


def skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "skip", detail)
