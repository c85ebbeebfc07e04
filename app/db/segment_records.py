"""One record per phone call, however many streams (segments) it had.

A caller transferred to a person who does not answer comes back to the agent on a new stream: segment 2 of
the same CallSid. Each segment's `CallStarted` / `CallEnded` lands in `call_segments`; the `calls` row holds
the totals (first start, last end, summed audio, usage and cost, the last segment's end reason), recomputed
from the segments after every change, so events may arrive in any order and twice.

The call's status says whether the *phone call* is over:
- `live` while a segment has started and not ended;
- `transferring` when the last segment ended by handing the caller to a person and neither a connected
  transfer (`completed`) nor Twilio's final call status has said the call is over: the caller may still
  come back (busy, no-answer, declined), so nothing is summarised yet;
- `ended` (or `abandoned`, the sweeper's word) otherwise. Post-call work runs once a call reaches these.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import (
    CALL_ABANDONED,
    CALL_ENDED,
    CALL_LIVE,
    CALL_TRANSFERRING,
    Call,
    CallSegment,
    TransferAttempt,
)
from app.db.pricing import cost_breakdown
from app.db.types import from_epoch
from app.db.upsert import insert_for

TRANSFERRED = "transferred"
CONNECTED = "completed"  # the <Dial>'s status when the person took the call
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
OVER = frozenset({CALL_ENDED, CALL_ABANDONED})


def upsert_segment(session: Session, call_sid: str, segment: int, values: Mapping[str, Any]) -> None:
    """Create or update one segment's row with `values` (None values never erase what is known)."""
    table = CallSegment.__table__
    known = {key: value for key, value in values.items() if value is not None}
    stmt = insert_for(session, CallSegment).values(call_sid=call_sid, segment=segment, **known)
    if not known:
        session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.call_sid, table.c.segment]))
        return
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid, table.c.segment],
        set_={key: getattr(stmt.excluded, key) for key in known},
    )
    session.execute(stmt)


def segment_started(session: Session, record: Mapping[str, Any]) -> None:
    """A segment's `CallStarted`."""
    upsert_segment(
        session,
        record["call_sid"],
        int(record.get("segment", 1)),
        {"model": record.get("model"), "started_at": from_epoch(float(record["started_at"]))},
    )


def segment_ended(session: Session, record: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """A segment's `CallEnded`, priced at its own model's rates (known from the record or its start)."""
    call_sid, segment = record["call_sid"], int(record.get("segment", 1))
    upsert_segment(
        session,
        call_sid,
        segment,
        {
            "model": record.get("model"),
            "ended_at": from_epoch(float(record["ended_at"])),
            "end_reason": str(record["end_reason"]),
            "audio_in_seconds": float(record.get("audio_in_seconds", 0.0)),
            "audio_out_seconds": float(record.get("audio_out_seconds", 0.0)),
            "usage": dict(record.get("usage") or {}),
            "expected_turns": expected.get("transcript_turn"),
            "expected_tools": expected.get("tool_invocation"),
        },
    )


def transfer_started(session: Session, call_sid: str, at: datetime, detail: Mapping[str, Any]) -> None:
    """A hand-off began in segment `detail["segment"]`."""
    _upsert_attempt(
        session, call_sid, int(detail.get("segment", 1)), {"reason": detail.get("reason"), "started_at": at}
    )


def transfer_result(session: Session, call_sid: str, at: datetime, detail: Mapping[str, Any]) -> None:
    """How a hand-off ended; without a segment, it is the latest attempt that has no result yet."""
    segment = detail.get("segment")
    if segment is None:
        segment = session.scalar(
            select(TransferAttempt.segment)
            .where(TransferAttempt.call_sid == call_sid, TransferAttempt.result.is_(None))
            .order_by(TransferAttempt.segment.desc())
            .limit(1)
        )
    _upsert_attempt(
        session, call_sid, int(segment or 1), {"result": str(detail.get("status")), "result_at": at}
    )


def _upsert_attempt(session: Session, call_sid: str, segment: int, values: Mapping[str, Any]) -> None:
    table = TransferAttempt.__table__
    known = {key: value for key, value in values.items() if value is not None}
    stmt = insert_for(session, TransferAttempt).values(call_sid=call_sid, segment=segment, **known)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid, table.c.segment],
        set_={key: getattr(stmt.excluded, key) for key in known},
    )
    session.execute(stmt)


def call_status(session: Session, call_sid: str, at: datetime, status: str) -> None:
    """Twilio's status callback for the call; a final status means the phone call is over."""
    session.execute(
        update(Call).where(Call.call_sid == call_sid).values(twilio_status=status[:16], twilio_status_at=at)
    )


def _merged_usage(rows: list[CallSegment]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        for key, value in (row.usage or {}).items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    return total


def _status(segments: list[CallSegment], attempts: list[TransferAttempt], call: Call) -> str:
    if any(row.ended_at is None for row in segments if row.started_at is not None):
        return CALL_LIVE
    last = max(segments, key=lambda row: row.segment)
    if last.end_reason == TRANSFERRED and call.twilio_status not in FINAL_CALL_STATUSES:
        attempt = next((row for row in attempts if row.segment == last.segment), None)
        if attempt is None or attempt.result != CONNECTED:
            return CALL_TRANSFERRING
    return CALL_ABANDONED if last.end_reason == "abandoned" else CALL_ENDED


def refresh_call(session: Session, call_sid: str) -> str | None:
    """Recompute the call's totals and status from its segments; returns the status (None: no segments)."""
    call = session.get(Call, call_sid, populate_existing=True)
    segments = list(
        session.scalars(
            select(CallSegment).where(CallSegment.call_sid == call_sid).order_by(CallSegment.segment)
        )
    )
    if call is None or not segments:
        return None
    attempts = list(session.scalars(select(TransferAttempt).where(TransferAttempt.call_sid == call_sid)))
    starts = [row.started_at for row in segments if row.started_at is not None]
    ends = [row.ended_at for row in segments if row.ended_at is not None]
    ended = [row for row in segments if row.ended_at is not None]
    parts: dict[str, Decimal] = {}
    for row in ended:  # each segment at its own model's rates, once its model and audio are known
        if row.model is not None and row.audio_in_seconds is not None and row.audio_out_seconds is not None:
            seconds = (row.audio_in_seconds, row.audio_out_seconds)
            segment_parts = cost_breakdown(row.model, *seconds, row.usage)
            row.cost_usd = sum(segment_parts.values(), Decimal(0))
            for part, value in segment_parts.items():
                parts[part] = parts.get(part, Decimal(0)) + value
    first_model = next((row.model for row in segments if row.model), None)
    call.segment_count = len(segments)
    call.model = call.model or first_model
    if starts:
        call.started_at = min(starts)
    if ended:
        last_ended = max(ended, key=lambda row: row.segment)
        call.ended_at = max(ends)
        call.end_reason = last_ended.end_reason
        call.audio_in_seconds = sum(row.audio_in_seconds or 0.0 for row in ended)
        call.audio_out_seconds = sum(row.audio_out_seconds or 0.0 for row in ended)
        call.usage = _merged_usage(ended)
        summary = (call.cost_breakdown or {}).get("summary")  # written by the summary step, kept
        if summary is not None:
            parts["summary"] = Decimal(str(summary))
        call.cost_breakdown = {part: str(value) for part, value in parts.items()}
        call.cost_usd = sum(parts.values(), Decimal(0))
        call.expected_turns = sum(row.expected_turns or 0 for row in ended)
        call.expected_tools = sum(row.expected_tools or 0 for row in ended)
    status = _status(segments, attempts, call)
    if call.status == CALL_ABANDONED and status == CALL_LIVE:
        status = CALL_ABANDONED  # a late heartbeat or start never revives a swept call
    call.status = status
    session.flush()
    return status
