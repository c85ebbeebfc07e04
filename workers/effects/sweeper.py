"""The stuck-call sweep: a live call nobody has heard from is abandoned, finalised and hung up.

A call is stuck when neither channel that proves it alive has spoken for `stuck_call_seconds`:
- `calls.last_seen_at`, moved by every event that reached the database through the queue, and
- `call_liveness`, which the relay writes straight to the database every heartbeat. This second path is
  what keeps a Redis outage from looking like dead calls: while the broker is down (and while the relay's
  outbox drains its backlog afterwards) the relay still proves its calls alive directly.

Sweeping marks the call `abandoned` (ended at the last time it was seen, like its live segment), and the
task then runs the usual post-call work on what was checkpointed and asks Twilio to complete the call if
Twilio still has it up, so nobody pays for a ghost call. A call between segments whose hand-off failed
(busy, no-answer, declined) but whose caller never came back to the agent is finalised the same way, once
that result is `stuck_call_seconds` old. On PostgreSQL the candidate rows are locked with SKIP LOCKED, so two
overlapping sweeps never take the same call; a real `CallEnded` arriving later still wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, SETTLED, SKIPPED, bump_attempts, effect_status, settle_effect
from app.db.models import (
    CALL_ABANDONED,
    CALL_ENDED,
    CALL_LIVE,
    CALL_TRANSFERRING,
    Call,
    CallLiveness,
    CallSegment,
    TransferAttempt,
)
from app.db.segment_records import CONNECTED, refresh_call
from app.db.types import utc_now
from app.twilio.rest import LIVE_STATUSES, TwilioRest, TwilioRestError
from workers.effects.errors import PermanentEffectError, TransientEffectError

HANGUP_EFFECT = "twilio_hangup"
LIVENESS_RETENTION = timedelta(days=1)


def sweep_stuck_calls(
    sessions: sessionmaker[Session], stuck_call_seconds: float, now: datetime | None = None
) -> list[str]:
    """Mark every stuck live call abandoned; returns their sids for the post-call work."""
    now = now or utc_now()
    cutoff = now - timedelta(seconds=stuck_call_seconds)
    last_seen = func.coalesce(Call.last_seen_at, Call.started_at, Call.created_at)
    with sessions.begin() as session:
        rows = session.execute(
            select(Call.call_sid, last_seen.label("seen"))
            .outerjoin(CallLiveness, CallLiveness.call_sid == Call.call_sid)
            .where(
                Call.status == CALL_LIVE,
                last_seen < cutoff,
                or_(CallLiveness.last_heartbeat_at.is_(None), CallLiveness.last_heartbeat_at < cutoff),
            )
            .with_for_update(of=Call, skip_locked=True)
        ).all()
        for call_sid, seen in rows:
            session.execute(
                update(Call)
                .where(Call.call_sid == call_sid, Call.status == CALL_LIVE)
                .values(
                    status=CALL_ABANDONED, end_reason="abandoned", ended_at=seen, swept_at=now, updated_at=now
                )
            )
            # The segment whose relay died ends where it was last seen; a real CallEnded later still wins.
            session.execute(
                update(CallSegment)
                .where(CallSegment.call_sid == call_sid, CallSegment.ended_at.is_(None))
                .values(ended_at=seen, end_reason="abandoned")
            )
            refresh_call(session, call_sid)
        stranded = _stranded_transfers(session, cutoff, now)
        session.execute(delete(CallLiveness).where(CallLiveness.last_heartbeat_at < now - LIVENESS_RETENTION))
    return [call_sid for call_sid, _ in rows] + stranded


def _stranded_transfers(session: Session, cutoff: datetime, now: datetime) -> list[str]:
    """Calls whose hand-off failed (busy, no-answer, declined) but whose caller never came back to the
    agent, with no final status from Twilio either: the phone call is over, finalise it."""
    rows = session.execute(
        select(Call.call_sid)
        .join(TransferAttempt, TransferAttempt.call_sid == Call.call_sid)
        .where(
            Call.status == CALL_TRANSFERRING,
            TransferAttempt.segment == Call.segment_count,
            TransferAttempt.result.is_not(None),
            TransferAttempt.result != CONNECTED,
            TransferAttempt.result_at < cutoff,
        )
        .with_for_update(of=Call, skip_locked=True)
    ).all()
    for (call_sid,) in rows:
        stranded = update(Call).where(Call.call_sid == call_sid)
        session.execute(stranded.values(status=CALL_ENDED, swept_at=now, updated_at=now))
    return [call_sid for (call_sid,) in rows]


def complete_remote_call(sessions: sessionmaker[Session], twilio: TwilioRest | None, call_sid: str) -> str:
    """Hang the call up over Twilio REST if it is still up there, once; returns the effect's status."""
    with sessions() as session:
        status = effect_status(session, call_sid, HANGUP_EFFECT)
    if status in SETTLED:
        return str(status)
    if twilio is None:
        with sessions.begin() as session:
            settle_effect(session, call_sid, HANGUP_EFFECT, SKIPPED, {"reason": "Twilio credentials not set"})
        return SKIPPED
    with sessions.begin() as session:
        bump_attempts(session, call_sid, HANGUP_EFFECT)
    try:
        before = twilio.call_status(call_sid)
        completed = twilio.complete_call(call_sid) if before in LIVE_STATUSES else False
    except TwilioRestError as exc:
        if exc.retryable:
            raise TransientEffectError(f"Twilio REST: HTTP {exc.status}") from None
        raise PermanentEffectError(f"Twilio REST refused: HTTP {exc.status} code {exc.code}") from None
    with sessions.begin() as session:
        settle_effect(
            session, call_sid, HANGUP_EFFECT, DONE, {"status_before": before, "completed": completed}
        )
    return DONE
