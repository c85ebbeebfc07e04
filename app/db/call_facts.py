"""What staff and the audits read besides the transcript: messages taken, notice attempts, recording status.

Each writer is an idempotent upsert keyed by the fact's natural key, like every writer in `call_records`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import CallMessage, ConsentNoticeAttemptRow, RecordingRow
from app.db.types import from_epoch
from app.db.upsert import insert_for

MAX_MESSAGE_CHARS = 4000


def _text(value: Any, limit: int) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text[:limit] or None


def record_message(session: Session, call_sid: str, at: datetime, detail: Mapping[str, Any]) -> None:
    """A message `take_message` recorded for staff (message, caller's name, callback number)."""
    table = CallMessage.__table__
    stmt = insert_for(session, CallMessage).values(
        call_sid=call_sid,
        at=at,
        message=_text(detail.get("message"), MAX_MESSAGE_CHARS) or "",
        caller_name=_text(detail.get("caller_name"), 128),
        callback_number=_text(detail.get("callback_number"), 64),
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.call_sid, table.c.at]))


def record_notice_attempt(session: Session, record: Mapping[str, Any]) -> None:
    """One attempt at the recording notice (`ConsentNoticeAttempt`)."""
    table = ConsentNoticeAttemptRow.__table__
    at = from_epoch(float(record["at"]))
    stmt = insert_for(session, ConsentNoticeAttemptRow).values(
        call_sid=record["call_sid"],
        attempt=int(record["attempt"]),
        at=at,
        heard=bool(record["heard"]),
        said=str(record.get("said") or "")[:MAX_MESSAGE_CHARS],
        why_not=_text(record.get("why_not"), 64),
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.call_sid, table.c.attempt]))


def record_recording_status(session: Session, record: Mapping[str, Any]) -> None:
    """Twilio's RecordingStatusCallback: the recording's status, URL and duration."""
    table = RecordingRow.__table__
    at = from_epoch(float(record["at"]))
    values = {
        "status": _text(record.get("status"), 16),
        "url": _text(record.get("url"), 2000),
        "duration_seconds": record.get("duration_seconds"),
    }
    known = {key: value for key, value in values.items() if value is not None}
    stmt = insert_for(session, RecordingRow).values(
        call_sid=record["call_sid"], recording_sid=str(record["recording_sid"]), started_at=at, **known
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.recording_sid], set_={key: getattr(stmt.excluded, key) for key in known}
    )
    session.execute(stmt)
