"""Words and numbers for people: outcome labels, masked numbers, local times, durations, the latency timeline.

Pure functions of stored values, so the pages and the API say the same thing and tests need no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from app.calls.call import SEGMENT_SEQ_STRIDE

OUTCOME_LABELS = {
    "booked": "Appointment booked",
    "information_given": "Information given",
    "transferred": "Transferred to staff",
    "emergency": "Emergency",
    "caller_hung_up": "Caller hung up",
    "agent_hung_up": "Agent ended the call",
    "idle": "Ended after silence",
    "capped": "Hit the call length limit",
    "failed": "Call failed",
}
HAND_OFF_TAGS = ("transfer_started", "transfer_result", "transfer_failed", "transferred")
TRANSFER_RESULTS = {
    "completed": "the person took the call",
    "busy": "the line was busy",
    "no-answer": "nobody answered",
    "declined": "the person declined",
    "failed": "the call could not be placed",
    "canceled": "the caller hung up while it rang",
}


def outcome_label(outcome: str | None, *, live: bool) -> str:
    """The outcome in plain words ("In progress" while live, "Not classified yet" before the worker ran)."""
    if live:
        return "In progress"
    if outcome is None:
        return "Not classified yet"
    return OUTCOME_LABELS.get(outcome, outcome.replace("_", " ").capitalize())


def mask_number(number: str | None) -> str:
    """A caller's number with all but the last four digits hidden."""
    if not number:
        return "Unknown"
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 4:
        return "•" * len(digits)
    return "••• ••• " + "".join(digits[-4:])


def local_text(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as the business's local date and time, e.g. `Tue 1 Dec 2026, 2:05 PM`."""
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    hour = local.strftime("%I").lstrip("0")
    return f"{local.strftime('%a')} {local.day} {local.strftime('%b %Y')}, {hour}:{local.strftime('%M %p')}"


def duration_text(seconds: float | None) -> str:
    """`3:07`, or `1:02:03` for an hour or more; empty when unknown."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def segment_of(seq: int) -> int:
    """Which stream of the call a transcript turn belongs to (2+ after a failed hand-off)."""
    return (seq - 1) // SEGMENT_SEQ_STRIDE + 1 if seq > 0 else 1


def hand_off_description(tag: str, detail: dict[str, object]) -> str:
    """A transfer step in plain words."""
    if tag == "transfer_started":
        return f"Transfer started (reason: {str(detail.get('reason') or 'not given').replace('_', ' ')})"
    if tag == "transfer_result":
        status = str(detail.get("status") or "unknown")
        return f"Transfer result: {TRANSFER_RESULTS.get(status, status)}"
    if tag == "transfer_failed":
        why = str(detail.get("why") or "unknown").replace("_", " ")
        return f"Transfer could not start ({why})"
    return "Transferred to a person"


class TimedTurn(Protocol):
    """What the latency timeline reads from a transcript turn."""

    @property
    def speaker(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def speech_ended_at(self) -> datetime | None: ...


def latency_timeline(
    call_started_at: datetime | None, turns: Sequence[TimedTurn]
) -> list[tuple[str, float, float | None]]:
    """(label, seconds into the call, wait in ms) for the greeting and each agent reply.

    The greeting waits from the stream's start; a reply waits from the moment the caller stopped speaking
    (server VAD) to its first audio. An agent turn that answers no caller words (after a tool, a filler)
    has no wait. An agent turn starts when the first of its audio or words reached the relay; audio
    generated before the stream existed (the pre-opened greeting) counts from the stream's start.
    """
    if call_started_at is None:
        return []
    points: list[tuple[str, float, float | None]] = []
    waiting_since: datetime | None = call_started_at
    label = "Greeting"
    for turn in sorted(turns, key=lambda t: t.started_at):
        if turn.speaker == "caller":
            if turn.speech_ended_at is not None:
                waiting_since, label = turn.speech_ended_at, "Reply"
            continue
        first_audio = max(turn.started_at, call_started_at)
        at = (first_audio - call_started_at).total_seconds()
        wait = None
        if waiting_since is not None and first_audio >= waiting_since:
            wait = round((first_audio - waiting_since).total_seconds() * 1000, 1)
        words = turn.text.split()
        quoted = " ".join(words[:6]).rstrip(".,;:!?") + "…" if len(words) > 6 else " ".join(words)
        points.append((f"{label if wait is not None else 'Agent'}: “{quoted}”", round(at, 2), wait))
        waiting_since, label = None, "Reply"
    return points
