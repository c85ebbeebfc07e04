"""Everything stored about one call, read table by table into a `CallDetail` (runs in a worker thread).

What was said and done (transcript, tools, latency) is assembled here; the phone call's record around it
(segments, transfer attempts, messages, consent notice attempts, recordings, cost parts) by `call_record`.
Notes whose facts have their own table are not repeated among the other events.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.backoffice import call_record, present
from app.backoffice.call_record import RecordingUrl, rows_of
from app.backoffice.queries import follow_up_model, list_item
from app.backoffice.schemas import CallDetail, LatencyPoint, Note, ToolCall, Turn
from app.db.models import (
    Call,
    CallMessage,
    CallNoteRow,
    CallOutcome,
    CallSegment,
    CallSummary,
    FollowUpRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
    TransferAttempt,
)


def load_call(
    session: Session, call_sid: str, *, zone: ZoneInfo, live: bool, recording_url: RecordingUrl
) -> CallDetail | None:
    """The call's whole record, or None if there is no such call."""
    call = session.get(Call, call_sid)
    if call is None:
        return None
    outcome = session.get(CallOutcome, call_sid)
    summary = session.get(CallSummary, call_sid)
    turns: list[TranscriptTurnRow] = rows_of(session, TranscriptTurnRow, call_sid, TranscriptTurnRow.seq)
    tools: list[ToolInvocationRow] = rows_of(session, ToolInvocationRow, call_sid, ToolInvocationRow.seq)
    notes: list[CallNoteRow] = rows_of(session, CallNoteRow, call_sid, CallNoteRow.at)
    segments: list[CallSegment] = rows_of(session, CallSegment, call_sid, CallSegment.segment)
    attempts: list[TransferAttempt] = rows_of(session, TransferAttempt, call_sid, TransferAttempt.segment)
    messages: list[CallMessage] = rows_of(session, CallMessage, call_sid, CallMessage.at)
    recordings: list[RecordingRow] = rows_of(session, RecordingRow, call_sid, RecordingRow.started_at)
    follow_ups: list[FollowUpRow] = rows_of(session, FollowUpRow, call_sid, FollowUpRow.created_at)
    head = list_item(
        call,
        outcome.outcome if outcome else None,
        zone=zone,
        live=live,
        message_taken=bool(messages),
        transfer_attempted=bool(attempts),
        transferred=any(row.result == present.CONNECTED for row in attempts),
        followed_up=bool(follow_ups),
    )
    alert = next((note.detail.get("why") for note in notes if note.tag == "staff_alert"), None)
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
        flagged_local=present.local_text(call.flagged_at, zone) or None,
        flag_reason=present.flag_text(alert) if call.flagged_at is not None else None,
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
        segments=call_record.segments(segments, start),
        transfer_attempts=call_record.transfer_attempts(attempts, zone),
        messages=call_record.messages(messages, zone),
        consent=call_record.consent(session, call_sid, zone),
        recordings=call_record.recordings(recordings, zone, recording_url),
        cost_breakdown=call_record.cost_breakdown(call.cost_breakdown),
        latency=[
            LatencyPoint(label=label, at_seconds=at, wait_ms=wait)
            for label, at, wait in present.latency_timeline(start, turns)
        ],
        notes=[
            Note(
                at=note.at,
                at_local=present.local_text(note.at, zone),
                tag=note.tag,
                detail=note.detail,
                description=present.note_text(note.tag, note.detail),
            )
            for note in notes
            if note.tag not in present.TABLED_NOTE_TAGS
        ],
        follow_ups=[follow_up_model(row, zone) for row in follow_ups],
    )
