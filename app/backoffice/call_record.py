"""The phone call's record beyond what was said: its segments and transfer attempts, messages taken, the
recording notice's attempts, recordings, and what each part of it cost.

Each reader takes the rows `load_call` read (or reads its own table) and turns them into the models the page
and the API share. The tables are the truth the workers keep (`app/db/segment_records.py`,
`app/db/call_facts.py`); nothing here is inferred from call notes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.backoffice import present
from app.backoffice.schemas import (
    Consent,
    CostPart,
    Message,
    NoticeAttempt,
    Recording,
    Segment,
    TransferAttempt,
)
from app.db.models import (
    CallMessage,
    CallSegment,
    ConsentAudit,
    ConsentDecisionRow,
    ConsentNoticeAttemptRow,
    RecordingRow,
)
from app.db.models import TransferAttempt as TransferAttemptRow

RecordingUrl = Callable[[str], str | None]
# Twilio's recording statuses that leave nothing to play (`absent`: no audio was captured).
UNPLAYABLE = frozenset({"absent", "failed", "in-progress"})


def rows_of(session: Session, model: Any, call_sid: str, order: Any) -> list[Any]:
    """One call's rows of `model`, in `order`."""
    return list(session.scalars(select(model).where(model.call_sid == call_sid).order_by(order)))


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def segments(rows: Sequence[CallSegment], call_started_at: datetime | None) -> list[Segment]:
    """Each stream of the call, where it sits in the call and how it ended."""
    return [
        Segment(
            segment=row.segment,
            model=row.model,
            started_at=row.started_at,
            ended_at=row.ended_at,
            at_seconds=_seconds_between(call_started_at, row.started_at),
            duration_seconds=_seconds_between(row.started_at, row.ended_at),
            end_reason=row.end_reason,
            end_reason_label=present.end_reason_text(row.end_reason),
            cost_usd=float(row.cost_usd) if row.cost_usd is not None else None,
        )
        for row in rows
    ]


def transfer_attempts(rows: Sequence[TransferAttemptRow], zone: ZoneInfo) -> list[TransferAttempt]:
    """Each hand-off to a person and its result (a connected one is `completed`)."""
    return [
        TransferAttempt(
            segment=row.segment,
            reason=row.reason,
            started_at=row.started_at,
            started_local=present.local_text(row.started_at, zone),
            result=row.result,
            result_at=row.result_at,
            result_text=present.transfer_result_text(row.result),
            connected=row.result == present.CONNECTED,
            description=present.transfer_text(row.reason, row.result),
        )
        for row in rows
    ]


def messages(rows: Sequence[CallMessage], zone: ZoneInfo) -> list[Message]:
    """The messages the agent took for staff, word for word."""
    return [
        Message(
            at=row.at,
            at_local=present.local_text(row.at, zone),
            caller_name=row.caller_name,
            callback_number=row.callback_number,
            message=row.message,
        )
        for row in rows
    ]


def recordings(rows: Sequence[RecordingRow], zone: ZoneInfo, recording_url: RecordingUrl) -> list[Recording]:
    """The call's recordings with Twilio's status, URL and length (from its status callback when it came).

    Staff play a recording through the relay (`recordings.py`), which fetches it from the account's own
    media URL; Twilio's URL from the callback is shown as it was stored."""
    shown = []
    for row in rows:
        fetchable = recording_url(row.recording_sid)
        shown.append(
            Recording(
                recording_sid=row.recording_sid,
                started_at=row.started_at,
                started_local=present.local_text(row.started_at, zone),
                status=row.status,
                duration_seconds=row.duration_seconds,
                url=row.url or fetchable,
                playable=fetchable is not None and row.status not in UNPLAYABLE,
            )
        )
    return shown


def consent(session: Session, call_sid: str, zone: ZoneInfo) -> Consent | None:
    """The notice decision, each attempt at the notice (what was said, whether it was heard), the audit."""
    decision = session.get(ConsentDecisionRow, call_sid)
    if decision is None:
        return None
    audit = session.get(ConsentAudit, call_sid)
    attempts: list[ConsentNoticeAttemptRow] = rows_of(
        session, ConsentNoticeAttemptRow, call_sid, ConsentNoticeAttemptRow.attempt
    )
    return Consent(
        mode=decision.mode,
        caller_state=decision.caller_state,
        notice_required=decision.notice_required,
        reason=decision.reason,
        notice_played_at=decision.notice_played_at,
        notice_played_local=present.local_text(decision.notice_played_at, zone) or None,
        audit_verdict=audit.verdict if audit else None,
        audit_reason=audit.reason if audit else None,
        notice_attempts=[
            NoticeAttempt(
                attempt=row.attempt,
                at=row.at,
                at_local=present.local_text(row.at, zone),
                heard=row.heard,
                said=row.said,
                why_not=row.why_not,
                why_not_text=present.notice_not_heard_text(row.why_not),
            )
            for row in attempts
        ],
    )


def cost_breakdown(breakdown: dict[str, Any] | None) -> list[CostPart]:
    """What each part of the call cost, as the workers priced it."""
    return [CostPart(part=part, label=label, usd=usd) for part, label, usd in present.cost_parts(breakdown)]
