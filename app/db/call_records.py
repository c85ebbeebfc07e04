"""Writing the relay's call events into the database, idempotently and in any order.

`record_event` takes one journal record (the dict `app.calls.events.event_to_record` made) and applies it
with `INSERT ... ON CONFLICT`, keyed by the event's natural key, so a redelivered task changes nothing.
Any event creates the call's row if it is missing (workers may see a turn before `CallStarted`) and moves
`last_seen_at` forward, which is what the stuck-call sweeper reads.

A turn re-emitted with the same seq and a later `ended_at` replaces the earlier text: the relay may
checkpoint a long utterance that way; an older copy arriving late never overwrites a newer one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from app.db.call_facts import record_message, record_notice_attempt, record_recording_status
from app.db.models import (
    CALL_LIVE,
    Call,
    CallLiveness,
    CallNoteRow,
    ConsentDecisionRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
)
from app.db.segment_records import (
    call_status,
    refresh_call,
    segment_ended,
    segment_started,
    transfer_result,
    transfer_started,
)
from app.db.types import from_epoch, utc_now
from app.db.upsert import insert_for, later_of


class UnknownEventError(ValueError):
    """A record whose `kind` this version does not know (a newer relay?)."""


def _ts(value: Any) -> datetime:
    stamp = from_epoch(float(value))
    assert stamp is not None
    return stamp


def touch_call(session: Session, call_sid: str, seen_at: datetime | None) -> None:
    """Create the call's row if missing and move `last_seen_at` forward to `seen_at` (if known)."""
    table = Call.__table__
    stmt = insert_for(session, Call).values(
        call_sid=call_sid, status=CALL_LIVE, last_seen_at=seen_at, created_at=utc_now(), updated_at=utc_now()
    )
    if seen_at is None:
        session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.call_sid]))
        return
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid],
        set_={
            "last_seen_at": later_of(table.c.last_seen_at, stmt.excluded.last_seen_at),
            "updated_at": stmt.excluded.updated_at,
        },
    )
    session.execute(stmt)


def _call_started(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    table = Call.__table__
    started_at = _ts(record["started_at"])
    values = {
        "call_sid": record["call_sid"],
        "from_number": record.get("from_number"),
        "to_number": record.get("to_number"),
        "caller_state": record.get("caller_state"),
        "model": record.get("model"),
        "started_at": started_at,
        "last_seen_at": started_at,
        "status": CALL_LIVE,
        "created_at": utc_now(),
        "updated_at": utc_now(),
    }
    stmt = insert_for(session, Call).values(**values)
    # Status, start and model are left to `refresh_call`, which reads every segment: a later segment's start
    # must not overwrite the first one's, and a CallEnded processed first must not turn back into a live call.
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid],
        set_={
            "from_number": func.coalesce(table.c.from_number, stmt.excluded.from_number),
            "to_number": func.coalesce(table.c.to_number, stmt.excluded.to_number),
            "caller_state": func.coalesce(table.c.caller_state, stmt.excluded.caller_state),
            "last_seen_at": later_of(table.c.last_seen_at, stmt.excluded.last_seen_at),
            "updated_at": stmt.excluded.updated_at,
        },
    )
    session.execute(stmt)
    segment_started(session, record)
    refresh_call(session, record["call_sid"])


def _transcript_turn(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    table = TranscriptTurnRow.__table__
    ended_at = _ts(record["ended_at"])
    touch_call(session, record["call_sid"], ended_at)
    stmt = insert_for(session, TranscriptTurnRow).values(
        call_sid=record["call_sid"],
        seq=int(record["seq"]),
        speaker=str(record["speaker"]),
        text=str(record["text"]),
        started_at=_ts(record["started_at"]),
        ended_at=ended_at,
        interrupted=bool(record.get("interrupted", False)),
        speech_ended_at=from_epoch(record.get("speech_ended_at")),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid, table.c.seq],
        set_={
            "speaker": stmt.excluded.speaker,
            "text": stmt.excluded.text,
            "started_at": stmt.excluded.started_at,
            "ended_at": stmt.excluded.ended_at,
            "interrupted": stmt.excluded.interrupted,
            "speech_ended_at": stmt.excluded.speech_ended_at,
        },
        where=stmt.excluded.ended_at > table.c.ended_at,
    )
    session.execute(stmt)


def _tool_invocation(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    table = ToolInvocationRow.__table__
    touch_call(session, record["call_sid"], journaled_at(meta))
    stmt = insert_for(session, ToolInvocationRow).values(
        call_sid=record["call_sid"],
        seq=int(record["seq"]),
        name=str(record["name"]),
        arguments=dict(record.get("arguments") or {}),
        result=dict(record.get("result") or {}),
        ok=bool(record.get("ok", False)),
        latency_ms=float(record.get("latency_ms", 0.0)),
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.call_sid, table.c.seq]))


def journaled_at(meta: Mapping[str, Any]) -> datetime | None:
    """When the outbox journaled a record that carries no timestamp of its own, if it says."""
    stamp = meta.get("journaled_at")
    return _ts(stamp) if stamp is not None else None


def _call_heartbeat(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    touch_call(session, record["call_sid"], _ts(record["at"]))


def _call_ended(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    call_sid = record["call_sid"]
    touch_call(session, call_sid, _ts(record["ended_at"]))
    segment_ended(session, record, meta.get("expected") or {})
    refresh_call(session, call_sid)


def _consent_decision(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    table = ConsentDecisionRow.__table__
    call_sid = record["call_sid"]
    played = record.get("notice_played_at")
    touch_call(session, call_sid, _ts(played) if played is not None else journaled_at(meta))
    stmt = insert_for(session, ConsentDecisionRow).values(
        call_sid=call_sid,
        mode=str(record["mode"]),
        caller_state=record.get("caller_state"),
        notice_required=bool(record["notice_required"]),
        reason=str(record.get("reason", "")),
        notice_played_at=from_epoch(played) if played is not None else None,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid],
        set_={
            "mode": stmt.excluded.mode,
            "caller_state": stmt.excluded.caller_state,
            "notice_required": stmt.excluded.notice_required,
            "reason": stmt.excluded.reason,
            # A later decision without a play time must not erase a notice already heard.
            "notice_played_at": later_of(table.c.notice_played_at, stmt.excluded.notice_played_at),
        },
    )
    session.execute(stmt)


def _recording_started(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    table = RecordingRow.__table__
    started_at = _ts(record["started_at"])
    touch_call(session, record["call_sid"], started_at)
    stmt = insert_for(session, RecordingRow).values(
        call_sid=record["call_sid"], recording_sid=str(record["recording_sid"]), started_at=started_at
    )
    # The start the relay saw is authoritative: a status callback processed first only guessed it.
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.recording_sid], set_={"started_at": stmt.excluded.started_at}
    )
    session.execute(stmt)


def _call_note(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    table = CallNoteRow.__table__
    at = _ts(record["at"])
    call_sid, tag, detail = record["call_sid"], str(record["tag"]), dict(record.get("detail") or {})
    touch_call(session, call_sid, at)
    stmt = insert_for(session, CallNoteRow).values(call_sid=call_sid, tag=tag, at=at, detail=detail)
    session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.call_sid, table.c.tag, table.c.at]))
    if tag == "transfer_started":
        transfer_started(session, call_sid, at, detail)
    elif tag == "transfer_result":
        transfer_result(session, call_sid, at, detail)
        refresh_call(session, call_sid)
    elif tag == "message":
        record_message(session, call_sid, at, detail)
    elif tag == "staff_alert":
        session.execute(
            update(Call).where(Call.call_sid == call_sid, Call.flagged_at.is_(None)).values(flagged_at=at)
        )


def _call_status(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    call_sid = record["call_sid"]
    at = _ts(record["at"])
    touch_call(session, call_sid, None)
    call_status(session, call_sid, at, str(record["status"]))
    refresh_call(session, call_sid)


def _notice_attempt(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    touch_call(session, record["call_sid"], _ts(record["at"]))
    record_notice_attempt(session, record)


def _recording_status(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    touch_call(session, record["call_sid"], None)
    record_recording_status(session, record)


_Handler = Callable[[Session, Mapping[str, Any], Mapping[str, Any]], None]
_HANDLERS: dict[str, _Handler] = {
    "call_started": _call_started,
    "transcript_turn": _transcript_turn,
    "tool_invocation": _tool_invocation,
    "call_heartbeat": _call_heartbeat,
    "call_ended": _call_ended,
    "consent_decision": _consent_decision,
    "recording_started": _recording_started,
    "call_note": _call_note,
    "call_status": _call_status,
    "consent_notice_attempt": _notice_attempt,
    "recording_status": _recording_status,
}


def record_event(session: Session, record: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> str:
    """Apply one event record in the caller's transaction; returns its kind. Safe to repeat."""
    kind = str(record.get("kind"))
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise UnknownEventError(f"unknown event kind {kind!r}")
    handler(session, record, meta or {})
    return kind


def record_liveness(session: Session, beats: Mapping[str, float], relay_id: str) -> None:
    """Upsert the relay's direct heartbeats (call sid -> wall-clock seconds) in one statement each."""
    table = CallLiveness.__table__
    for call_sid, at in beats.items():
        stmt = insert_for(session, CallLiveness).values(
            call_sid=call_sid, last_heartbeat_at=_ts(at), relay_id=relay_id
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.call_sid],
            set_={
                "last_heartbeat_at": later_of(table.c.last_heartbeat_at, stmt.excluded.last_heartbeat_at),
                "relay_id": stmt.excluded.relay_id,
            },
        )
        session.execute(stmt)
