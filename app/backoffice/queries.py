"""The back office's reads and its one write, as plain functions of a SQLAlchemy session.

They run in a worker thread (see `store.py`), never on the relay's event loop. The calls list is one
statement with EXISTS sub-selects for the per-call flags, so a page costs the same whatever the call volume;
a message taken is a `call_messages` row, a transfer tried is a `transfer_attempts` row and a transfer that
connected is one whose result is `completed` (one that came back was only tried).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session

from app.backoffice import present
from app.backoffice.schemas import CallListItem, CallPage, FollowUp
from app.db.models import (
    CALL_LIVE,
    CALL_TRANSFERRING,
    Call,
    CallMessage,
    CallOutcome,
    FollowUpRow,
    TranscriptTurnRow,
    TransferAttempt,
)
from app.db.types import utc_now

LIVE_FILTER = "live"
S = TypeVar("S", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True, slots=True)
class CallFilters:
    """What the calls list is narrowed to; dates are the business's local days, inclusive."""

    date_from: date | None = None
    date_to: date | None = None
    outcome: str | None = None
    text: str | None = None
    page: int = 1
    per_page: int = 25


def _started() -> ColumnElement[datetime]:
    return func.coalesce(Call.started_at, Call.created_at)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(stmt: S, filters: CallFilters, zone: ZoneInfo, live_sids: frozenset[str]) -> S:
    if filters.date_from is not None:
        stmt = stmt.where(_started() >= _local_midnight(filters.date_from, zone))
    if filters.date_to is not None:
        stmt = stmt.where(_started() < _local_midnight(filters.date_to + timedelta(days=1), zone))
    if filters.outcome == LIVE_FILTER:
        stmt = stmt.where(or_(Call.status == CALL_LIVE, Call.call_sid.in_(live_sids)))
    elif filters.outcome:
        stmt = stmt.where(CallOutcome.outcome == filters.outcome)
    if filters.text and filters.text.strip():
        pattern = _like_pattern(filters.text.strip())
        said = exists().where(
            TranscriptTurnRow.call_sid == Call.call_sid,
            func.lower(TranscriptTurnRow.text).like(pattern, escape="\\"),
        )
        stmt = stmt.where(or_(said, Call.from_number.like(pattern, escape="\\")))
    return stmt


def _message_taken() -> ColumnElement[bool]:
    return exists().where(CallMessage.call_sid == Call.call_sid)


def _transfer_exists(*, connected: bool) -> ColumnElement[bool]:
    found = exists().where(TransferAttempt.call_sid == Call.call_sid)
    return found.where(TransferAttempt.result == present.CONNECTED) if connected else found


def list_calls(
    session: Session, filters: CallFilters, *, zone: ZoneInfo, live_sids: frozenset[str] = frozenset()
) -> CallPage:
    """One page of calls, newest first, with the flags the list shows."""
    base = select(Call.call_sid).outerjoin(CallOutcome, CallOutcome.call_sid == Call.call_sid)
    total = session.scalar(
        select(func.count()).select_from(_filtered(base, filters, zone, live_sids).subquery())
    )
    stmt = select(
        Call,
        CallOutcome.outcome,
        _message_taken().label("message_taken"),
        _transfer_exists(connected=False).label("transfer_attempted"),
        _transfer_exists(connected=True).label("transferred"),
        exists().where(FollowUpRow.call_sid == Call.call_sid).label("followed_up"),
    ).outerjoin(CallOutcome, CallOutcome.call_sid == Call.call_sid)
    stmt = _filtered(stmt, filters, zone, live_sids).order_by(_started().desc(), Call.call_sid)
    stmt = stmt.limit(filters.per_page).offset((filters.page - 1) * filters.per_page)
    items = [
        list_item(
            row.Call,
            row.outcome,
            zone=zone,
            live=row.Call.call_sid in live_sids,
            message_taken=bool(row.message_taken),
            transfer_attempted=bool(row.transfer_attempted),
            transferred=bool(row.transferred),
            followed_up=bool(row.followed_up),
        )
        for row in session.execute(stmt)
    ]
    count = int(total or 0)
    return CallPage(
        calls=items,
        page=filters.page,
        per_page=filters.per_page,
        total=count,
        pages=max(1, -(-count // filters.per_page)),
    )


def list_item(
    call: Call,
    outcome: str | None,
    *,
    zone: ZoneInfo,
    live: bool,
    message_taken: bool,
    transfer_attempted: bool,
    transferred: bool,
    followed_up: bool,
) -> CallListItem:
    """A call's row in the list (also the head of its detail)."""
    live = live or call.status == CALL_LIVE
    transferring = call.status == CALL_TRANSFERRING
    started = call.started_at or call.created_at
    if call.ended_at is not None and call.started_at is not None:
        duration: float | None = (call.ended_at - call.started_at).total_seconds()
    elif live and call.started_at is not None:
        duration = (utc_now() - call.started_at).total_seconds()
    else:
        duration = None
    return CallListItem(
        call_sid=call.call_sid,
        started_at=call.started_at,
        started_local=present.local_text(started, zone),
        caller=call.from_number,
        caller_masked=present.mask_number(call.from_number),
        duration_seconds=round(duration, 1) if duration is not None else None,
        live=live,
        status=call.status,
        end_reason=call.end_reason,
        outcome=outcome,
        outcome_label=present.outcome_label(outcome, live=live, transferring=transferring),
        cost_usd=float(call.cost_usd) if call.cost_usd is not None else None,
        message_taken=message_taken,
        transferred=transferred,
        transfer_attempted=transfer_attempted,
        followed_up=followed_up,
        flagged=call.flagged_at is not None,
        flagged_at=call.flagged_at,
    )


def add_follow_up(session: Session, call_sid: str, note: str, *, zone: ZoneInfo) -> FollowUp | None:
    """Mark the call followed up with `note`; None if there is no such call."""
    if session.get(Call, call_sid) is None:
        return None
    row = FollowUpRow(call_sid=call_sid, note=note.strip(), created_at=utc_now())
    session.add(row)
    session.flush()
    return follow_up_model(row, zone)


def follow_up_model(row: FollowUpRow, zone: ZoneInfo) -> FollowUp:
    """A stored follow-up for the page and the API."""
    return FollowUp(
        id=row.id,
        note=row.note,
        created_at=row.created_at,
        created_local=present.local_text(row.created_at, zone),
    )
