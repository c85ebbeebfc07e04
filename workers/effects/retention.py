"""Personal data kept no longer than needed: calls past `RETENTION_DAYS`, and one caller's data on request.

Both remove everything stored about the calls they select: the call row (numbers), transcript turns (the
caller's words), tool invocations (names, phone numbers in booking arguments), notes, consent records,
recording references, outcomes, summaries, the delivery ledger, failed-task records (their payloads carry
the same words) and liveness rows. Recordings live at Twilio too: each is deleted over REST first, and a
call whose recording Twilio could not delete just now is kept whole for the next run, so no reference to
audio that still exists is lost. Without Twilio credentials the references go and the count of recordings
left at Twilio is reported.

The beat runs `purge_expired_calls` every `RETENTION_SWEEP_SECONDS`, in batches so one run stays short;
`voice-agent db forget --caller +1...` runs `forget_caller`. Neither logs a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import (
    CALL_LIVE,
    Call,
    CallLiveness,
    CallMessage,
    CallNoteRow,
    CallOutcome,
    CallSegment,
    CallSummary,
    ConsentAudit,
    ConsentDecisionRow,
    ConsentNoticeAttemptRow,
    Delivery,
    FailedTask,
    FollowUpRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
    TransferAttempt,
)
from app.db.types import utc_now
from app.logs import get_logger
from app.twilio.rest import TwilioRest, TwilioRestError

log = get_logger(__name__)

PURGE_BATCH = 500
RECORDINGS_LEFT_AT_TWILIO = "recordings_left_at_twilio"
RECORDINGS_DELETED_AT_TWILIO = "recordings_deleted_at_twilio"
CALLS_KEPT_FOR_RETRY = "calls_kept_for_retry"

# Children first, `calls` last: the counts then say what each table lost, whatever the foreign keys do.
_CALL_TABLES: tuple[Any, ...] = (
    CallSegment,
    TransferAttempt,
    CallMessage,
    ConsentNoticeAttemptRow,
    FollowUpRow,
    TranscriptTurnRow,
    ToolInvocationRow,
    CallNoteRow,
    ConsentDecisionRow,
    RecordingRow,
    ConsentAudit,
    CallOutcome,
    CallSummary,
    Delivery,
    FailedTask,
    CallLiveness,
    Call,
)


def purge_expired_calls(
    sessions: sessionmaker[Session],
    twilio: TwilioRest | None,
    retention_days: int,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete up to `PURGE_BATCH` ended calls older than `retention_days`; returns counts per table."""
    cutoff = (now or utc_now()) - timedelta(days=retention_days)
    ended_or_seen = func.coalesce(Call.ended_at, Call.last_seen_at, Call.started_at, Call.created_at)
    with sessions() as session:
        call_sids = session.scalars(
            select(Call.call_sid)
            .where(Call.status != CALL_LIVE, ended_or_seen < cutoff)
            .order_by(ended_or_seen)
            .limit(PURGE_BATCH)
        ).all()
    removed = remove_calls(sessions, twilio, call_sids)
    if call_sids:
        log.info("retention_purged", retention_days=retention_days, **removed)
    return removed


def forget_caller(sessions: sessionmaker[Session], twilio: TwilioRest | None, number: str) -> dict[str, int]:
    """Delete every call from `number` (live ones too: the caller asked); returns counts per table."""
    with sessions() as session:
        call_sids = session.scalars(select(Call.call_sid).where(Call.from_number == number)).all()
    removed = remove_calls(sessions, twilio, call_sids)
    log.info("caller_forgotten", **removed)
    return removed


def remove_calls(
    sessions: sessionmaker[Session], twilio: TwilioRest | None, call_sids: Sequence[str]
) -> dict[str, int]:
    """Delete the calls' recordings at Twilio, then every row of theirs; returns counts per table."""
    removed: dict[str, int] = {table.__tablename__: 0 for table in _CALL_TABLES}
    removed |= {RECORDINGS_DELETED_AT_TWILIO: 0, RECORDINGS_LEFT_AT_TWILIO: 0, CALLS_KEPT_FOR_RETRY: 0}
    for call_sid in call_sids:
        with sessions() as session:
            recordings = session.scalars(
                select(RecordingRow.recording_sid).where(RecordingRow.call_sid == call_sid)
            ).all()
        if not _delete_recordings(twilio, call_sid, recordings, removed):
            removed[CALLS_KEPT_FOR_RETRY] += 1
            continue
        with sessions.begin() as session:
            for table in _CALL_TABLES:
                result = session.execute(delete(table).where(table.call_sid == call_sid))
                removed[table.__tablename__] += int(getattr(result, "rowcount", 0) or 0)
    return removed


def _delete_recordings(
    twilio: TwilioRest | None, call_sid: str, recordings: Sequence[str], removed: dict[str, int]
) -> bool:
    """Ask Twilio to delete each recording; False (keep the call) if one could not be deleted now."""
    if twilio is None:
        removed[RECORDINGS_LEFT_AT_TWILIO] += len(recordings)
        return True
    for recording_sid in recordings:
        try:
            if twilio.delete_recording(recording_sid):
                removed[RECORDINGS_DELETED_AT_TWILIO] += 1
        except TwilioRestError as exc:
            log.warning("recording_delete_failed", call_sid=call_sid, status=exc.status, code=exc.code)
            return False
    return True
