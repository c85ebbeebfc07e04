"""The tables back-office staff and the side-workers read: one row per call, and what happened on it.

Design notes:
- `calls.call_sid` (Twilio's CallSid) is the natural key and the primary key; every child row hangs off it.
  Events may arrive out of order (several workers, retries), so any event creates a stub `calls` row and
  `CallStarted` fills it in later.
- Every child table has a unique natural key ((call_sid, seq), (call_sid, effect), recording_sid, ...) so a
  redelivered task is absorbed by `INSERT ... ON CONFLICT` instead of writing a second row.
- `deliveries` is the ledger of post-call side effects, one row per (call, effect): outcome, summary,
  consent audit, CRM sync, summary webhook/email, REST hang-up. Its status makes each effect run once.
- `call_liveness` is written by the relay directly (not through the queue), so a broker outage cannot make
  live calls look dead to the sweeper; it has no foreign key because it may be written before `calls`.
- Timestamps are aware UTC datetimes on both databases (see `app.db.types`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.types import UTCDateTime, json_type, utc_now

# Named constraints make migrations reproducible and let Alembic's SQLite batch mode find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL gets a BIGINT identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")

CALL_LIVE = "live"
CALL_ENDED = "ended"
CALL_ABANDONED = "abandoned"
CALL_TRANSFERRING = "transferring"  # between segments: a person's phone rings, or they are talking


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention and column type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: json_type(), list[Any]: json_type()}


def _call_fk() -> Any:
    return ForeignKey("calls.call_sid", ondelete="CASCADE")


class Call(Base):
    """One phone call: who, when, which model, how it ended and what it cost."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_status_last_seen_at", "status", "last_seen_at"),)

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    caller_state: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=CALL_LIVE)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None] = mapped_column(doc="Newest event time the relay reported.")
    audio_in_seconds: Mapped[float | None] = mapped_column(Float)
    audio_out_seconds: Mapped[float | None] = mapped_column(Float)
    usage: Mapped[dict[str, Any] | None]
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 5))
    expected_turns: Mapped[int | None] = mapped_column(Integer)
    expected_tools: Mapped[int | None] = mapped_column(Integer)
    swept_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    # Added by 0002 (segments): the totals above sum every segment; these say when the phone call ended.
    segment_count: Mapped[int | None] = mapped_column(Integer, doc="Streams the call had (1 + returns).")
    twilio_status: Mapped[str | None] = mapped_column(String(16), doc="Twilio's last reported status.")
    twilio_status_at: Mapped[datetime | None]
    cost_breakdown: Mapped[dict[str, Any] | None] = mapped_column(doc="USD by part: audio, text, ...")
    flagged_at: Mapped[datetime | None] = mapped_column(doc="When staff were alerted during the call.")


class CallSegment(Base):
    """One stream of a call: the first, and one more each time the caller came back from a transfer."""

    __tablename__ = "call_segments"
    __table_args__ = (UniqueConstraint("call_sid", "segment"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    segment: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    audio_in_seconds: Mapped[float | None] = mapped_column(Float)
    audio_out_seconds: Mapped[float | None] = mapped_column(Float)
    usage: Mapped[dict[str, Any] | None]
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 5))
    expected_turns: Mapped[int | None] = mapped_column(Integer)
    expected_tools: Mapped[int | None] = mapped_column(Integer)


class TransferAttempt(Base):
    """A hand-off to a person started in `segment`, and how it ended (completed, busy, no-answer, ...)."""

    __tablename__ = "transfer_attempts"
    __table_args__ = (UniqueConstraint("call_sid", "segment"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    segment: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(String(16), doc="completed | busy | no-answer | declined ...")
    result_at: Mapped[datetime | None]


class CallMessage(Base):
    """A message the agent took for staff (`take_message`)."""

    __tablename__ = "call_messages"
    __table_args__ = (UniqueConstraint("call_sid", "at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    at: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text)
    caller_name: Mapped[str | None] = mapped_column(String(128))
    callback_number: Mapped[str | None] = mapped_column(String(64))


class ConsentNoticeAttemptRow(Base):
    """One attempt at the recording notice: what the model said and whether it was heard to the end."""

    __tablename__ = "consent_notice_attempts"
    __table_args__ = (UniqueConstraint("call_sid", "attempt"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    heard: Mapped[bool] = mapped_column(Boolean)
    said: Mapped[str] = mapped_column(Text)
    why_not: Mapped[str | None] = mapped_column(String(64))


class CallLiveness(Base):
    """The relay's own, queue-independent proof that a call is still up."""

    __tablename__ = "call_liveness"

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_heartbeat_at: Mapped[datetime]
    relay_id: Mapped[str] = mapped_column(String(64))


class TranscriptTurnRow(Base):
    """One utterance; for the agent, the words the caller actually heard."""

    __tablename__ = "transcript_turns"
    __table_args__ = (UniqueConstraint("call_sid", "seq"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    speech_ended_at: Mapped[datetime | None] = mapped_column(doc="Caller turns: when the caller stopped.")


class ToolInvocationRow(Base):
    """A tool the agent ran: arguments, result and how long it took."""

    __tablename__ = "tool_invocations"
    __table_args__ = (UniqueConstraint("call_sid", "seq"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any]]
    ok: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[float] = mapped_column(Float)


class CallNoteRow(Base):
    """A fact the outcome depends on (emergency, transferred, model_failed, ...)."""

    __tablename__ = "call_notes"
    __table_args__ = (UniqueConstraint("call_sid", "tag", "at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    tag: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]]


class ConsentDecisionRow(Base):
    """Whether the recording notice was required on this call, why, and when it was played."""

    __tablename__ = "consent_decisions"

    call_sid: Mapped[str] = mapped_column(String(64), _call_fk(), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    caller_state: Mapped[str | None] = mapped_column(String(16))
    notice_required: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    notice_played_at: Mapped[datetime | None]


class RecordingRow(Base):
    """A Twilio recording started on the call."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk(), index=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime]
    # Added by 0002, from Twilio's RecordingStatusCallback.
    status: Mapped[str | None] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float | None] = mapped_column(Float)


class ConsentAudit(Base):
    """The post-call verdict: was the notice spoken before any recording, where it was needed."""

    __tablename__ = "consent_audits"

    call_sid: Mapped[str] = mapped_column(String(64), _call_fk(), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), doc="compliant | violation | not_applicable")
    notice_required: Mapped[bool | None] = mapped_column(Boolean)
    recording_count: Mapped[int] = mapped_column(Integer)
    first_recording_at: Mapped[datetime | None]
    notice_played_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text)
    audited_at: Mapped[datetime] = mapped_column(default=utc_now)
    notice_attempts: Mapped[int | None] = mapped_column(Integer, doc="Times the notice was given (0002).")
    notice_said: Mapped[str | None] = mapped_column(Text, doc="What the model said in the heard attempt.")


class CallOutcome(Base):
    """What the call achieved, with the evidence the classifier used."""

    __tablename__ = "call_outcomes"

    call_sid: Mapped[str] = mapped_column(String(64), _call_fk(), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32), index=True)
    reasons: Mapped[list[Any]]
    classified_at: Mapped[datetime] = mapped_column(default=utc_now)


class CallSummary(Base):
    """The post-call summary staff read."""

    __tablename__ = "call_summaries"

    call_sid: Mapped[str] = mapped_column(String(64), _call_fk(), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16), doc="llm | extractive")
    model: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Delivery(Base):
    """One post-call side effect of one call, and whether it is done (the idempotency ledger)."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("call_sid", "effect"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk())
    effect: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), doc="pending | done | skipped | failed")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    completed_at: Mapped[datetime | None]


class FailedTask(Base):
    """A task that finally failed after its retries: kept for people to see and requeue."""

    __tablename__ = "failed_tasks"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[str] = mapped_column(String(128), index=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    effect: Mapped[str | None] = mapped_column(String(32))
    error_type: Mapped[str] = mapped_column(String(128))
    error_message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]]
    failed_at: Mapped[datetime] = mapped_column(default=utc_now)
    resolved_at: Mapped[datetime | None]


class FollowUpRow(Base):
    """A member of staff marked the call followed up, with a note (a call may collect several)."""

    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), _call_fk(), index=True)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
