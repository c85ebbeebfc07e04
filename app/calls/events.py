"""What a call tells the rest of the system, and the sink it tells it to.

The relay emits these records; the sink hands them to the side-workers without blocking the event loop and
without losing them (see `app/outbox`). Records are plain JSON-able dicts under a `kind`, so they survive a
disk journal and a Celery hop unchanged. They never carry secrets; caller numbers and words travel only to
storage, never to logs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Speaker = Literal["caller", "agent"]


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_sid: str
    from_number: str | None
    to_number: str | None
    caller_state: str | None
    model: str
    started_at: float
    segment: int = 1  # 1 for the call's first stream, 2+ for each return from a transfer that did not connect
    kind: Literal["call_started"] = "call_started"


@dataclass(frozen=True, slots=True)
class TranscriptTurn:
    """One utterance. For the agent, `text` is what the caller actually heard (cut at barge-in)."""

    call_sid: str
    seq: int
    speaker: Speaker
    text: str
    started_at: float
    ended_at: float
    interrupted: bool = False
    # Caller turns: when the caller stopped speaking (server VAD), where a reply's latency counts from.
    speech_ended_at: float | None = None
    kind: Literal["transcript_turn"] = "transcript_turn"


@dataclass(frozen=True, slots=True)
class ToolInvocation:
    call_sid: str
    seq: int
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]
    ok: bool
    latency_ms: float
    kind: Literal["tool_invocation"] = "tool_invocation"


@dataclass(frozen=True, slots=True)
class CallHeartbeat:
    """Sent while a call is live; the beat sweeper treats a silent call as abandoned."""

    call_sid: str
    at: float
    kind: Literal["call_heartbeat"] = "call_heartbeat"


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_sid: str
    ended_at: float
    end_reason: str
    audio_in_seconds: float
    audio_out_seconds: float
    usage: dict[str, int] = field(default_factory=dict)
    segment: int = 1
    model: str | None = None  # the segment's model, so each segment is priced at its own rates
    kind: Literal["call_ended"] = "call_ended"


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """Whether the recording notice was required on this call, and why (kept for the audit)."""

    call_sid: str
    mode: str
    caller_state: str | None
    notice_required: bool
    reason: str
    notice_played_at: float | None = None
    kind: Literal["consent_decision"] = "consent_decision"


@dataclass(frozen=True, slots=True)
class ConsentNoticeAttempt:
    """One attempt at giving the recording notice: what the model said, and whether the caller heard it all.

    `heard` is true only when the audio carrying the notice played to its end (its marks echoed, no clear in
    between) and the model's own transcript of it says the notice word for word."""

    call_sid: str
    attempt: int
    at: float
    heard: bool
    said: str
    why_not: str | None = None
    kind: Literal["consent_notice_attempt"] = "consent_notice_attempt"


@dataclass(frozen=True, slots=True)
class CallStatus:
    """Twilio's status callback for the call (its final status says the phone call is over)."""

    call_sid: str
    at: float
    status: str
    duration_seconds: float | None = None
    kind: Literal["call_status"] = "call_status"


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    """Twilio's RecordingStatusCallback: where the recording is and how long it runs."""

    call_sid: str
    recording_sid: str
    status: str
    at: float
    url: str | None = None
    duration_seconds: float | None = None
    kind: Literal["recording_status"] = "recording_status"


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    call_sid: str
    recording_sid: str
    started_at: float
    kind: Literal["recording_started"] = "recording_started"


@dataclass(frozen=True, slots=True)
class CallNote:
    """A fact about the call the outcome depends on: `emergency`, `transfer_started` (detail: reason,
    segment), `transfer_result` (status, segment), `transfer_failed`, `message` (message, caller_name,
    callback_number), `staff_alert` (why), `model_reconnected`, `model_failed`."""

    call_sid: str
    at: float
    tag: str
    detail: dict[str, Any] = field(default_factory=dict)
    kind: Literal["call_note"] = "call_note"


CallEvent = (
    CallStarted
    | TranscriptTurn
    | ToolInvocation
    | CallHeartbeat
    | CallEnded
    | ConsentDecision
    | RecordingStarted
    | CallNote
    | ConsentNoticeAttempt
    | CallStatus
    | RecordingStatus
)


def event_to_record(event: CallEvent) -> dict[str, Any]:
    """A JSON-able dict carrying `kind`, for the journal and the task queue."""
    return asdict(event)


class CallEventSink(Protocol):
    """Where the relay puts call events. `emit` must return at once and never raise."""

    def emit(self, event: CallEvent) -> None: ...


class MemorySink:
    """Keeps events in a list: for tests, the demo and the `call` command's own report."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def emit(self, event: CallEvent) -> None:
        self.events.append(event)

    def of_kind(self, kind: str) -> list[CallEvent]:
        return [event for event in self.events if event.kind == kind]


def now() -> float:
    """Wall-clock seconds, the timebase every event uses."""
    return time.time()
