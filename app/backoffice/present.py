"""Words and numbers for people: outcome, end and transfer labels, masked numbers, local times, durations,
cost parts, the latency timeline.

Pure functions of stored values, so the pages and the API say the same thing and tests need no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from app.calls.call import SEGMENT_SEQ_STRIDE

OUTCOME_LABELS = {
    "booked": "Appointment booked",
    "information_given": "Information given",
    "transferred": "Transferred to staff",
    "message_taken": "Message taken",
    "emergency": "Emergency",
    "caller_hung_up": "Caller hung up",
    "agent_hung_up": "Agent ended the call",
    "idle": "Ended after silence",
    "capped": "Hit the call length limit",
    "failed": "Call failed",
}
# Notes the call page shows from their own tables (transfer attempts, messages, the emergency flag).
TABLED_NOTE_TAGS = frozenset({"transfer_started", "transfer_result", "message", "staff_alert"})
CONNECTED = "completed"  # a transfer's result when the person took the call
TRANSFER_RESULTS = {
    CONNECTED: "the person took the call",
    "busy": "the line was busy",
    "no-answer": "nobody answered",
    "declined": "the person declined",
    "failed": "the call could not be placed",
    "canceled": "the caller hung up while it rang",
}
END_REASONS = {
    "caller_hung_up": "the caller hung up",
    "agent_hung_up": "the agent ended the call",
    "transferred": "handed to a person",
    "idle": "ended after silence",
    "capped": "hit the call length limit",
    "failed": "the call failed",
    "abandoned": "the connection was lost",
}
NOTICE_NOT_HEARD = {
    "interrupted": "the caller spoke over it",
    "model_reconnected": "the model reconnected while it played",
    "not_verbatim": "the agent did not say it word for word",
    "never_started": "it never started",
    "not_played": "it did not finish playing",
}
FLAG_REASONS = {
    "emergency_no_human": "Possible emergency and no transfer number is set: the caller was told to dial "
    "the emergency number",
    "emergency_transfer_failed": "Possible emergency and the transfer to a person failed: the caller was "
    "told to dial the emergency number",
}
COST_PARTS = {
    "audio_in": "Caller audio",
    "audio_out": "Agent audio",
    "text": "Text and context",
    "transcription": "Transcription",
    "model": "Model (estimate)",
    "summary": "Summary",
}
RECORDING_STATUSES = {
    "in-progress": "still recording",
    "completed": "ready",
    "absent": "no audio was recorded",
    "failed": "Twilio could not record it",
}
TRANSFER_FAILURES = {"no_human": "no transfer number is set", "rest": "Twilio did not accept it"}
OTHER_NOTES = {
    "emergency": "The caller described an emergency",
    "model_reconnected": "The model connection dropped and was restored",
    "model_failed": "The model connection failed",
}


def outcome_label(outcome: str | None, *, live: bool, transferring: bool = False) -> str:
    """The outcome in plain words ("In progress" while live, "Being transferred" while a person's phone rings
    or they talk, "Not classified yet" before the worker ran)."""
    if live:
        return "In progress"
    if outcome is None:
        return "Being transferred" if transferring else "Not classified yet"
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


def end_reason_text(reason: str | None) -> str:
    """How a segment ended, in plain words."""
    if reason is None:
        return "still going on"
    return END_REASONS.get(reason, reason.replace("_", " "))


def transfer_result_text(result: str | None) -> str | None:
    """How a transfer ended, in plain words (None while it rings)."""
    if result is None:
        return None
    return TRANSFER_RESULTS.get(result, result.replace("-", " "))


def transfer_text(reason: str | None, result: str | None) -> str:
    """A transfer attempt in plain words: why it started and how it ended."""
    why = (reason or "not given").replace("_", " ")
    outcome = transfer_result_text(result)
    if outcome is None:
        return f"Transfer to a person (reason: {why}): ringing, no result yet"
    back = "" if result == CONNECTED else "; the caller came back to the agent"
    return f"Transfer to a person (reason: {why}): {outcome}{back}"


def notice_not_heard_text(why_not: str | None) -> str | None:
    """Why a notice attempt does not count, in plain words (None when it was heard)."""
    if why_not is None:
        return None
    return NOTICE_NOT_HEARD.get(why_not, why_not.replace("_", " "))


def flag_text(why: object) -> str:
    """Why staff were alerted during the call."""
    return FLAG_REASONS.get(str(why), "Staff were alerted during the call")


def note_text(tag: str, detail: Mapping[str, object]) -> str:
    """Any other note in plain words."""
    if tag == "transfer_failed":
        why = str(detail.get("why") or "unknown")
        return f"A transfer could not start ({TRANSFER_FAILURES.get(why, why.replace('_', ' '))})"
    return OTHER_NOTES.get(tag, tag.replace("_", " ").capitalize())


def recording_status_text(status: str | None) -> str:
    """Twilio's recording status in plain words (empty when no status callback came)."""
    if status is None:
        return ""
    return RECORDING_STATUSES.get(status, status.replace("-", " "))


def cost_parts(breakdown: Mapping[str, object] | None) -> list[tuple[str, str, float]]:
    """(part, label, USD) for each part of the call's cost, in a fixed order, unknown parts last."""
    parts = dict(breakdown or {})
    order = [part for part in COST_PARTS if part in parts] + sorted(set(parts) - set(COST_PARTS))
    rows = []
    for part in order:
        try:
            usd = float(str(parts[part]))
        except ValueError:
            continue  # not a number: nothing a person could read either
        rows.append((part, COST_PARTS.get(part, part.replace("_", " ").capitalize()), usd))
    return rows


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
