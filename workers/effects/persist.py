"""Persist one call event from the relay's outbox: the transcript checkpoint and everything else.

An envelope is `{"record": <event_to_record dict>, "meta": {...}}`; `meta` carries what the outbox knows
beyond the event itself (when it was journaled, how many turns and tool calls preceded a `CallEnded`).
The whole envelope is applied in one transaction with natural-key upserts, so a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.db.call_records import UnknownEventError, record_event
from workers.effects.errors import PermanentEffectError


@dataclass(frozen=True, slots=True)
class PersistResult:
    """What was stored; `call_ended` asks the caller to start the post-call work."""

    kind: str
    call_sid: str

    @property
    def call_ended(self) -> bool:
        """The stored event ended the call."""
        return self.kind == "call_ended"


def persist_event(sessions: sessionmaker[Session], envelope: Mapping[str, Any]) -> PersistResult:
    """Store one envelope in one transaction; safe to repeat."""
    record = envelope.get("record")
    if not isinstance(record, Mapping) or not record.get("call_sid"):
        raise PermanentEffectError("envelope without a call record")
    meta = envelope.get("meta") or {}
    try:
        with sessions.begin() as session:
            kind = record_event(session, record, meta)
    except UnknownEventError as exc:
        raise PermanentEffectError(str(exc)) from None
    return PersistResult(kind=kind, call_sid=str(record["call_sid"]))
