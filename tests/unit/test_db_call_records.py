"""Storing call events: every kind, idempotent on redelivery, correct in any order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import (
    CallEnded,
    CallEvent,
    CallHeartbeat,
    CallNote,
    CallStarted,
    ConsentDecision,
    RecordingStarted,
    ToolInvocation,
    TranscriptTurn,
    event_to_record,
)
from app.db.call_records import UnknownEventError, record_event
from app.db.engine import make_engine, make_session_factory
from app.db.models import (
    Base,
    Call,
    CallNoteRow,
    ConsentDecisionRow,
    RecordingRow,
    ToolInvocationRow,
    TranscriptTurnRow,
)
from app.settings import load_settings

SID = "CA" + "a" * 32
T0 = 1_790_000_000.0


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def store(sessions: sessionmaker[Session], event: CallEvent, meta: dict[str, Any] | None = None) -> None:
    with sessions.begin() as session:
        record_event(session, event_to_record(event), meta)


def whole_call() -> list[CallEvent]:
    return [
        CallStarted(SID, "+15551230000", "+15559990000", "CA", "gpt-realtime-mini", T0),
        ConsentDecision(SID, "auto", "CA", True, "two-party consent state", notice_played_at=T0 + 1),
        RecordingStarted(SID, "RE" + "b" * 32, T0 + 2),
        TranscriptTurn(SID, 1, "agent", "Hi, this call is recorded.", T0, T0 + 2),
        TranscriptTurn(SID, 2, "caller", "I need a cleaning.", T0 + 3, T0 + 4),
        ToolInvocation(
            SID, 1, "check_availability", {"service": "cleaning"}, {"slots": ["10:00"]}, True, 80.0
        ),
        CallHeartbeat(SID, T0 + 5),
        CallNote(SID, T0 + 6, "model_reconnected", {"attempt": 1}),
        TranscriptTurn(SID, 3, "agent", "We have ten o'clock", T0 + 6, T0 + 7, interrupted=True),
        CallEnded(SID, T0 + 9, "caller_hung_up", 6.0, 4.0, {"input_tokens": 300, "output_tokens": 120}),
    ]


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                Call,
                TranscriptTurnRow,
                ToolInvocationRow,
                CallNoteRow,
                RecordingRow,
                ConsentDecisionRow,
            )
        }


def test_a_whole_call_is_stored_with_cost_and_what_the_caller_heard(sessions: sessionmaker[Session]) -> None:
    for event in whole_call():
        store(sessions, event, {"expected": {"transcript_turn": 3, "tool_invocation": 1}})
    with sessions() as session:
        call = session.get(Call, SID)
        assert call is not None
        assert (call.status, call.end_reason, call.model) == ("ended", "caller_hung_up", "gpt-realtime-mini")
        assert (call.expected_turns, call.expected_tools) == (3, 1)
        assert call.cost_usd is not None and call.cost_usd > 0
        assert call.ended_at is not None and call.ended_at.timestamp() == pytest.approx(T0 + 9)
        turns = session.scalars(select(TranscriptTurnRow).order_by(TranscriptTurnRow.seq)).all()
        assert [(t.speaker, t.text, t.interrupted) for t in turns][-1] == (
            "agent",
            "We have ten o'clock",
            True,
        )
        consent = session.get(ConsentDecisionRow, SID)
        assert consent is not None and consent.notice_required and consent.notice_played_at is not None
    assert counts(sessions) == {
        "calls": 1,
        "transcript_turns": 3,
        "tool_invocations": 1,
        "call_notes": 1,
        "recordings": 1,
        "consent_decisions": 1,
    }


def test_redelivering_every_event_writes_nothing_twice(sessions: sessionmaker[Session]) -> None:
    for event in whole_call():
        store(sessions, event)
    before = counts(sessions)
    for event in whole_call():
        store(sessions, event)
    assert counts(sessions) == before


def test_events_in_reverse_order_give_the_same_call(sessions: sessionmaker[Session]) -> None:
    for event in reversed(whole_call()):
        store(sessions, event)
    with sessions() as session:
        call = session.get(Call, SID)
        assert call is not None
        # CallStarted arriving after CallEnded must not turn the call back into a live one.
        assert call.status == "ended"
        assert call.from_number == "+15551230000" and call.model == "gpt-realtime-mini"
        assert call.cost_usd is not None
        assert call.last_seen_at is not None and call.last_seen_at.timestamp() == pytest.approx(T0 + 9)


def test_a_checkpointed_turn_is_replaced_by_newer_text_but_never_by_older(
    sessions: sessionmaker[Session],
) -> None:
    store(sessions, CallStarted(SID, None, None, None, "gpt-realtime", T0))
    partial = TranscriptTurn(SID, 1, "caller", "So I was wondering", T0, T0 + 15)
    final = TranscriptTurn(SID, 1, "caller", "So I was wondering whether you open Saturdays", T0, T0 + 21)
    store(sessions, partial)
    store(sessions, final)
    store(sessions, partial)  # a late redelivery of the checkpoint
    with sessions() as session:
        texts = session.scalars(select(TranscriptTurnRow.text)).all()
    assert texts == ["So I was wondering whether you open Saturdays"]


def test_heartbeats_only_move_last_seen_forward(sessions: sessionmaker[Session]) -> None:
    store(sessions, CallStarted(SID, None, None, None, "gpt-realtime", T0))
    store(sessions, CallHeartbeat(SID, T0 + 20))
    store(sessions, CallHeartbeat(SID, T0 + 10))
    with sessions() as session:
        call = session.get(Call, SID)
        assert call is not None and call.last_seen_at is not None
        assert call.last_seen_at.timestamp() == pytest.approx(T0 + 20)
        assert call.status == "live"


def test_an_unknown_kind_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(UnknownEventError), sessions.begin() as session:
        record_event(session, {"kind": "call_teleported", "call_sid": SID})
