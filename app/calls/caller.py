"""Who is calling: the identity and details a call is bound to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallerInfo:
    call_sid: str
    from_number: str | None = None
    to_number: str | None = None
    caller_state: str | None = None
    resume: str | None = None  # why the caller is back with the agent, e.g. "transfer_no-answer"
    segment: int = 1  # 1 for the first stream of a call, 2+ after failed transfers
