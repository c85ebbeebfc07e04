"""The post-call pipeline's local steps, in order: outcome -> summary -> consent audit.

The summary reads the outcome, so order matters; each step is idempotent on its own, so re-running the
whole pipeline after a crash redoes only what was not finished. Deliveries to the outside (CRM, webhook,
email, Twilio) are separate tasks with their own retries, started by the task once these steps are done.

Events reach the workers in parallel, so `CallEnded` can be processed before the last transcript turns.
The outbox stamps `CallEnded` with how many turns and tool calls it journaled for the call;
`transcript_complete` compares that with what is stored, and the task waits a little while they differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import SETTLED, bump_attempts
from app.db.models import Call, Delivery, ToolInvocationRow, TranscriptTurnRow
from app.db.segment_records import OVER
from app.db.types import utc_now
from app.settings import Settings
from workers.effects.consent import audit_consent
from workers.effects.outcome import classify_outcome
from workers.effects.summary import ClientFactory, default_client, summarise

REQUEUE_EFFECT = "post_call_requeue"
REQUEUE_AFTER = timedelta(minutes=2)
REQUEUE_WINDOW = timedelta(days=1)
REQUEUE_SPACING = timedelta(minutes=5)
MAX_REQUEUES = 3


@dataclass(frozen=True, slots=True)
class PostCallReport:
    """What the local steps produced (None where the call is unknown)."""

    outcome: str | None
    summary: str | None
    consent_verdict: str | None


def transcript_complete(sessions: sessionmaker[Session], call_sid: str) -> bool:
    """True once every turn and tool call the relay reported for the call is stored."""
    with sessions() as session:
        call = session.get(Call, call_sid)
        if call is None:
            return False
        turns = session.scalar(select(func.count()).where(TranscriptTurnRow.call_sid == call_sid)) or 0
        tools = session.scalar(select(func.count()).where(ToolInvocationRow.call_sid == call_sid)) or 0
    return turns >= (call.expected_turns or 0) and tools >= (call.expected_tools or 0)


def run_post_call(
    sessions: sessionmaker[Session],
    settings: Settings,
    call_sid: str,
    *,
    allow_summary_fallback: bool = True,
    client_factory: ClientFactory = default_client,
) -> PostCallReport:
    """Outcome, then summary, then consent audit; each runs once per call."""
    outcome = classify_outcome(sessions, call_sid)
    summary = summarise(
        sessions, settings, call_sid, allow_fallback=allow_summary_fallback, client_factory=client_factory
    )
    verdict = audit_consent(sessions, call_sid)
    return PostCallReport(outcome=outcome, summary=summary, consent_verdict=verdict)


def calls_needing_post_call(sessions: sessionmaker[Session], now: datetime | None = None) -> list[str]:
    """Finished calls whose post-call work never completed (a lost publish, a crash): ask again, a few
    times, spaced out. The sweep calls this as a safety net; it never touches a call twice in a row."""
    now = now or utc_now()
    outcome = Delivery.__table__.alias("outcome_row")
    requeue = Delivery.__table__.alias("requeue_row")
    with sessions.begin() as session:
        candidates = (
            session.execute(
                select(Call.call_sid)
                .outerjoin(outcome, and_(outcome.c.call_sid == Call.call_sid, outcome.c.effect == "outcome"))
                .outerjoin(
                    requeue, and_(requeue.c.call_sid == Call.call_sid, requeue.c.effect == REQUEUE_EFFECT)
                )
                .where(
                    Call.status.in_(OVER),
                    Call.ended_at < now - REQUEUE_AFTER,
                    Call.ended_at > now - REQUEUE_WINDOW,
                    (outcome.c.status.is_(None)) | (outcome.c.status.not_in(SETTLED)),
                    (requeue.c.attempts.is_(None))
                    | ((requeue.c.attempts < MAX_REQUEUES) & (requeue.c.updated_at < now - REQUEUE_SPACING)),
                )
            )
            .scalars()
            .all()
        )
        for call_sid in candidates:
            bump_attempts(session, call_sid, REQUEUE_EFFECT, now)
    return list(candidates)
