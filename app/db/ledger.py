"""The `deliveries` ledger: each post-call effect of each call runs to completion once.

Local effects (outcome, summary row, consent audit) call `claim_effect` and write their result in the same
transaction: the claim is an UPDATE, so on PostgreSQL it row-locks (a duplicate delivery running at the
same moment waits, then sees `done` and does nothing) and on SQLite it takes the database write lock.
External effects (CRM, webhook, email, Twilio) cannot share a transaction with the far side: they check
`effect_status` first, send with an idempotency key derived from (call, effect), then `settle_effect`. A
crash between sending and settling repeats the send once; the key lets the receiver drop it.

`record_failed_task` keeps tasks that exhausted their retries, for people to see and requeue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Delivery, FailedTask
from app.db.types import utc_now
from app.db.upsert import insert_for

PENDING = "pending"
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
SETTLED = frozenset({DONE, SKIPPED})

MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed (call, effect): how many times it has been tried, including this one."""

    call_sid: str
    effect: str
    attempts: int


def _seed(session: Session, call_sid: str, effect: str) -> None:
    table = Delivery.__table__
    now = utc_now()
    seed = insert_for(session, Delivery).values(
        call_sid=call_sid,
        effect=effect,
        status=PENDING,
        attempts=0,
        detail={},
        created_at=now,
        updated_at=now,
    )
    session.execute(seed.on_conflict_do_nothing(index_elements=[table.c.call_sid, table.c.effect]))


def claim_effect(session: Session, call_sid: str, effect: str) -> Claim | None:
    """Lock (call, effect) for this transaction; None if it is already done or skipped."""
    now = utc_now()
    _seed(session, call_sid, effect)
    attempts = session.execute(
        update(Delivery)
        .where(Delivery.call_sid == call_sid, Delivery.effect == effect, Delivery.status.not_in(SETTLED))
        .values(attempts=Delivery.attempts + 1, updated_at=now)
        .returning(Delivery.attempts)
    ).scalar_one_or_none()
    if attempts is None:
        return None
    return Claim(call_sid=call_sid, effect=effect, attempts=int(attempts))


def effect_status(session: Session, call_sid: str, effect: str) -> str | None:
    """The effect's status, or None if it was never attempted."""
    return session.execute(
        select(Delivery.status).where(Delivery.call_sid == call_sid, Delivery.effect == effect)
    ).scalar_one_or_none()


def settle_effect(
    session: Session,
    call_sid: str,
    effect: str,
    status: str,
    detail: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record the effect's result (done, skipped or failed), creating its row if needed."""
    table = Delivery.__table__
    now = utc_now()
    completed_at = now if status in SETTLED else None
    values = {
        "call_sid": call_sid,
        "effect": effect,
        "status": status,
        "attempts": 1,
        "detail": dict(detail or {}),
        "last_error": error[:MAX_ERROR_CHARS] if error else None,
        "created_at": now,
        "updated_at": now,
        "completed_at": completed_at,
    }
    stmt = insert_for(session, Delivery).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.call_sid, table.c.effect],
        set_={
            "status": stmt.excluded.status,
            "detail": stmt.excluded.detail,
            "last_error": stmt.excluded.last_error,
            "updated_at": stmt.excluded.updated_at,
            "completed_at": stmt.excluded.completed_at,
        },
        # Never demote a settled effect (a late failure report after a successful duplicate).
        where=table.c.status.not_in(SETTLED),
    )
    session.execute(stmt)


def bump_attempts(session: Session, call_sid: str, effect: str, now: datetime | None = None) -> int:
    """Count one more attempt at an external effect; returns the new count."""
    now = now or utc_now()
    _seed(session, call_sid, effect)
    attempts = session.execute(
        update(Delivery)
        .where(Delivery.call_sid == call_sid, Delivery.effect == effect)
        .values(attempts=Delivery.attempts + 1, updated_at=now)
        .returning(Delivery.attempts)
    ).scalar_one()
    return int(attempts)


def record_failed_task(
    session: Session,
    *,
    task_name: str,
    task_id: str,
    error_type: str,
    error_message: str,
    attempts: int,
    payload: Mapping[str, Any],
    call_sid: str | None = None,
    effect: str | None = None,
) -> None:
    """Keep a finally failed task; marks its (call, effect) failed too when it has one."""
    session.add(
        FailedTask(
            task_name=task_name,
            task_id=task_id,
            call_sid=call_sid,
            effect=effect,
            error_type=error_type,
            error_message=error_message[:MAX_ERROR_CHARS],
            attempts=attempts,
            payload=dict(payload),
        )
    )
    if call_sid is not None and effect is not None:
        settle_effect(session, call_sid, effect, FAILED, error=f"{error_type}: {error_message}")
