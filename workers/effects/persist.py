"""Persist one call event from the relay's outbox: the transcript checkpoint and everything else.

An envelope is `{"record": <event_to_record dict>, "meta": {...}}`; `meta` carries what the outbox knows
beyond the event itself (when it was journaled, how many turns and tool calls preceded a `CallEnded`).
The whole envelope is applied in one transaction with natural-key upserts, so a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.call_records import UnknownEventError, record_event
from app.db.models import Call
from app.db.segment_records import OVER
from workers.effects.errors import PermanentEffectError

# Events that can end the *phone call*: a segment's end, a hand-off's result note, Twilio's final status.
ENDING_KINDS = frozenset({"call_ended", "call_note", "call_status"})


@dataclass(frozen=True, slots=True)
class PersistResult:
    """What was stored. `call_over` asks the caller to start the post-call work (the phone call is over:
    its last segment ended and no transfer is pending); `staff_alert` asks for an alert to staff now."""

    kind: str
    call_sid: str
    call_over: bool = False
    staff_alert: bool = False


def persist_event(sessions: sessionmaker[Session], envelope: Mapping[str, Any]) -> PersistResult:
    """Store one envelope in one transaction; safe to repeat."""
    record = envelope.get("record")
    if not isinstance(record, Mapping) or not record.get("call_sid"):
        raise PermanentEffectError("envelope without a call record")
    meta = envelope.get("meta") or {}
    call_sid = str(record["call_sid"])
    try:
        with sessions.begin() as session:
            kind = record_event(session, record, meta)
            ending = kind in ENDING_KINDS and (kind != "call_note" or record.get("tag") == "transfer_result")
            status = session.scalar(select(Call.status).where(Call.call_sid == call_sid)) if ending else None
    except UnknownEventError as exc:
        raise PermanentEffectError(str(exc)) from None
    alert = kind == "call_note" and record.get("tag") == "staff_alert"
    return PersistResult(kind=kind, call_sid=call_sid, call_over=status in OVER, staff_alert=alert)
