"""What the back office shows about calls, as typed models: the JSON API returns them, the pages render them.

Times are aware UTC datetimes (the API) with the business's local time beside them as text (the pages and
people reading the JSON). A field the database does not hold for a call is None, never a guess.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class CallListItem(BaseModel):
    """One row of the calls list."""

    call_sid: str
    started_at: datetime | None
    started_local: str = Field(description="Start time in the business's time zone, for people.")
    caller: str | None = Field(description="The caller's number (the pages mask it until clicked).")
    caller_masked: str
    duration_seconds: float | None
    live: bool = Field(description="The call has not ended yet.")
    status: str
    end_reason: str | None
    outcome: str | None
    outcome_label: str
    cost_usd: float | None
    message_taken: bool = Field(description="The agent took at least one message for staff.")
    transferred: bool = Field(description="A transfer connected: a person took the call.")
    transfer_attempted: bool = Field(description="A transfer rang out, whatever its result.")
    followed_up: bool
    flagged: bool = Field(description="Staff were alerted during the call (an emergency).")
    flagged_at: datetime | None


class CallPage(BaseModel):
    """A page of the calls list and where it sits in the whole."""

    calls: list[CallListItem]
    page: int
    per_page: int
    total: int
    pages: int


class Turn(BaseModel):
    """One utterance as the caller experienced it; `interrupted` when the caller cut the agent off."""

    seq: int
    segment: int = Field(description="1 for the first stream; 2+ after the caller came back from a hand-off.")
    speaker: str
    text: str
    started_at: datetime
    ended_at: datetime
    at_seconds: float | None = Field(description="Seconds from the start of the call.")
    interrupted: bool
    speech_ended_at: datetime | None = None


class ToolCall(BaseModel):
    """A tool the agent ran, with what it was asked, what it answered and how long it took."""

    seq: int
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]
    ok: bool
    latency_ms: float


class Segment(BaseModel):
    """One stream of the phone call: the first, and one more each time the caller came back to the agent."""

    segment: int
    model: str | None
    started_at: datetime | None
    ended_at: datetime | None
    at_seconds: float | None = Field(description="Seconds from the start of the call.")
    duration_seconds: float | None
    end_reason: str | None
    end_reason_label: str
    cost_usd: float | None


class TransferAttempt(BaseModel):
    """A hand-off to a person started in `segment`, and how it ended (None while it rings)."""

    segment: int
    reason: str | None
    started_at: datetime | None
    started_local: str
    result: str | None = Field(description="completed | busy | no-answer | declined | failed | canceled")
    result_at: datetime | None
    result_text: str | None = Field(description="The result in plain words (None while it rings).")
    connected: bool = Field(description="A person took the call; otherwise the caller came back.")
    description: str


class Message(BaseModel):
    """A message the agent took for staff."""

    at: datetime
    at_local: str
    caller_name: str | None
    callback_number: str | None
    message: str


class NoticeAttempt(BaseModel):
    """One attempt at the recording notice: what the model said and whether the caller heard all of it."""

    attempt: int
    at: datetime
    at_local: str
    heard: bool
    said: str
    why_not: str | None = Field(description="interrupted | model_reconnected | not_verbatim | ...")
    why_not_text: str | None


class Consent(BaseModel):
    """The recording-notice decision, each attempt at the notice, and the post-call audit's verdict."""

    mode: str
    caller_state: str | None
    notice_required: bool
    reason: str
    notice_played_at: datetime | None
    notice_played_local: str | None
    audit_verdict: str | None
    audit_reason: str | None
    notice_attempts: list[NoticeAttempt]


class Recording(BaseModel):
    """A Twilio recording of the call."""

    recording_sid: str
    started_at: datetime
    started_local: str
    status: str | None = Field(description="Twilio's recording status (completed, absent, failed...).")
    duration_seconds: float | None
    url: str | None = Field(
        description="Twilio's media URL (needs the account's credentials when protected)."
    )
    playable: bool = Field(description="Staff can play it: Twilio has not said it failed or is absent.")


class CostPart(BaseModel):
    """What one part of the call cost (audio in, audio out, text, transcription, the summary)."""

    part: str
    label: str
    usd: float


class LatencyPoint(BaseModel):
    """One moment of the latency timeline: the greeting or a reply, and how long the caller waited for it."""

    label: str
    at_seconds: float
    wait_ms: float | None = Field(
        description="Stream start (greeting) or caller stopped speaking -> first audio."
    )


class Note(BaseModel):
    """Any other fact the relay noted (emergency, model reconnects, a transfer that could not start...)."""

    at: datetime
    at_local: str
    tag: str
    detail: dict[str, Any]
    description: str


class FollowUp(BaseModel):
    """Staff marked the call followed up."""

    id: int
    note: str
    created_at: datetime
    created_local: str


class FollowUpRequest(BaseModel):
    """Mark a call followed up."""

    note: str = Field(default="", max_length=2000, description="What was done (may be empty).")


class CallDetail(CallListItem):
    """Everything stored about one call."""

    to_number: str | None
    caller_state: str | None
    model: str | None
    ended_at: datetime | None
    ended_local: str | None
    summary: str | None
    summary_method: str | None
    outcome_reasons: list[Any]
    flagged_local: str | None
    flag_reason: str | None = Field(description="Why staff were alerted, in plain words.")
    turns: list[Turn]
    tools: list[ToolCall]
    segments: list[Segment]
    transfer_attempts: list[TransferAttempt]
    messages: list[Message]
    consent: Consent | None
    recordings: list[Recording]
    cost_breakdown: list[CostPart]
    latency: list[LatencyPoint]
    notes: list[Note]
    follow_ups: list[FollowUp]
