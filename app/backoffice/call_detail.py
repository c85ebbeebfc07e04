"""Everything stored about one call, read table by table into a `CallDetail` (runs in a worker thread).

Segments and transfer attempts are told today by transcript seq numbers (a later segment starts at 1001)
and by call notes (`transfer_started`, `transfer_result`, `transfer_failed`); messages by `message` notes.
A richer call record adds its own reader here and a field on `CallDetail`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.backoffice import present
from app.backoffice.queries import follow_up_model, list_item
from app.backoffice.schemas import (
    CallDetail,
    Consent,
    HandOffStep,
    LatencyPoint,
    Message,
    Note,
    Recording,
    ToolCall,
    Turn,
)
from app.db.models import (
    Call,
    CallNoteRow,
    CallOutcome,
    CallSummary,
    ConsentAudit,
    ConsentDecisionRow,
    FollowUpRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
)

RecordingUrl = Callable[[str], str | None]


def _rows(session: Session, model: Any, call_sid: str, order: Any) -> list[Any]:
    return list(session.scalars(select(model).where(model.call_sid == call_sid).order_by(order)))


def load_call(
    session: Session, call_sid: str, *, zone: ZoneInfo, live: bool, recording_url: RecordingUrl
) -> CallDetail | None:
    """The call's whole record, or None if there is no such call."""
    call = session.get(Call, call_sid)
    if call is None:
        return None
    outcome = session.get(CallOutcome, call_sid)
    summary = session.get(CallSummary, call_sid)
    turns: list[TranscriptTurnRow] = _rows(session, TranscriptTurnRow, call_sid, TranscriptTurnRow.seq)
    tools: list[ToolInvocationRow] = _rows(session, ToolInvocationRow, call_sid, ToolInvocationRow.seq)
    notes: list[CallNoteRow] = _rows(session, CallNoteRow, call_sid, CallNoteRow.at)
    recordings: list[RecordingRow] = _rows(session, RecordingRow, call_sid, RecordingRow.started_at)
    follow_ups: list[FollowUpRow] = _rows(session, FollowUpRow, call_sid, FollowUpRow.created_at)
    tags = {note.tag for note in notes}
    head = list_item(
        call,
        outcome.outcome if outcome else None,
        zone=zone,
        live=live,
        message_taken="message" in tags,
        transfer_attempted="transfer_started" in tags,
        followed_up=bool(follow_ups),
    )
    start = call.started_at
    return CallDetail(
        **head.model_dump(),
        to_number=call.to_number,
        caller_state=call.caller_state,
        model=call.model,
        ended_at=call.ended_at,
        ended_local=present.local_text(call.ended_at, zone) or None,
        summary=summary.text if summary else None,
        summary_method=summary.method if summary else None,
        outcome_reasons=list(outcome.reasons) if outcome else [],
        turns=[
            Turn(
                seq=turn.seq,
                segment=present.segment_of(turn.seq),
                speaker=turn.speaker,
                text=turn.text,
                started_at=turn.started_at,
                ended_at=turn.ended_at,
                at_seconds=round((turn.started_at - start).total_seconds(), 1) if start else None,
                interrupted=turn.interrupted,
                speech_ended_at=turn.speech_ended_at,
            )
            for turn in turns
        ],
        tools=[
            ToolCall(
                seq=tool.seq,
                name=tool.name,
                arguments=tool.arguments,
                result=tool.result,
                ok=tool.ok,
                latency_ms=tool.latency_ms,
            )
            for tool in tools
        ],
        hand_offs=[
            HandOffStep(
                at=note.at,
                at_local=present.local_text(note.at, zone),
                step=note.tag,
                detail=note.detail,
                description=present.hand_off_description(note.tag, note.detail),
            )
            for note in notes
            if note.tag in present.HAND_OFF_TAGS
        ],
        messages=[
            Message(
                at=note.at,
                at_local=present.local_text(note.at, zone),
                caller_name=note.detail.get("caller_name"),
                callback_number=note.detail.get("callback_number"),
                message=note.detail.get("message"),
            )
            for note in notes
            if note.tag == "message"
        ],
        consent=_consent(session, call_sid, zone),
        recordings=[
            Recording(
                recording_sid=rec.recording_sid,
                started_at=rec.started_at,
                started_local=present.local_text(rec.started_at, zone),
                url=recording_url(rec.recording_sid),
            )
            for rec in recordings
        ],
        latency=[
            LatencyPoint(label=label, at_seconds=at, wait_ms=wait)
            for label, at, wait in present.latency_timeline(start, turns)
        ],
        notes=[
            Note(at=note.at, at_local=present.local_text(note.at, zone), tag=note.tag, detail=note.detail)
            for note in notes
            if note.tag not in present.HAND_OFF_TAGS and note.tag != "message"
        ],
        follow_ups=[follow_up_model(row, zone) for row in follow_ups],
    )


def _consent(session: Session, call_sid: str, zone: ZoneInfo) -> Consent | None:
    decision = session.get(ConsentDecisionRow, call_sid)
    if decision is None:
        return None
    audit = session.get(ConsentAudit, call_sid)
    return Consent(
        mode=decision.mode,
        caller_state=decision.caller_state,
        notice_required=decision.notice_required,
        reason=decision.reason,
        notice_played_at=decision.notice_played_at,
        notice_played_local=present.local_text(decision.notice_played_at, zone) or None,
        audit_verdict=audit.verdict if audit else None,
        audit_reason=audit.reason if audit else None,
    )
