"""One record per phone call: segments add up, post-call work waits until the phone call is really over,
and a hand-off counts as `transferred` only when a person took the call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import (
    CallEnded,
    CallEvent,
    CallHeartbeat,
    CallNote,
    CallStarted,
    CallStatus,
    TranscriptTurn,
    event_to_record,
)
from app.db.engine import make_engine, make_session_factory
from app.db.models import Base, Call, CallSegment, TransferAttempt
from app.settings import load_settings
from workers.effects.outcome import classify_outcome
from workers.effects.persist import PersistResult, persist_event
from workers.effects.summary import summarise
from workers.effects.sweeper import sweep_stuck_calls

SID = "CA" + "5" * 32
T0 = 1_790_000_000.0


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def store(sessions: sessionmaker[Session], event: CallEvent, **meta: Any) -> PersistResult:
    return persist_event(sessions, {"record": event_to_record(event), "meta": meta})


def first_segment_transferred(sessions: sessionmaker[Session]) -> list[PersistResult]:
    """Segment 1 on the mini model: the caller asks for a person and the agent hands them over."""
    return [
        store(sessions, CallStarted(SID, "+15551230000", "+15559990000", "NY", "gpt-realtime-mini", T0)),
        store(sessions, TranscriptTurn(SID, 1, "caller", "I need to talk to someone", T0 + 1, T0 + 3)),
        store(sessions, CallNote(SID, T0 + 4, "transfer_started", {"reason": "caller_asked", "segment": 1})),
        store(
            sessions,
            CallEnded(SID, T0 + 10, "transferred", 10.0, 4.0, {}, segment=1, model="gpt-realtime-mini"),
            expected={"transcript_turn": 1, "tool_invocation": 0},
        ),
    ]


def second_segment(sessions: sessionmaker[Session], *, ended: bool = True) -> list[PersistResult]:
    """The caller is back with the agent (on the full model) after nobody answered."""
    results = [
        store(sessions, CallNote(SID, T0 + 31, "transfer_result", {"status": "no-answer", "segment": 1})),
        store(
            sessions,
            CallStarted(SID, "+15551230000", "+15559990000", "NY", "gpt-realtime", T0 + 32, segment=2),
        ),
        store(
            sessions,
            TranscriptTurn(SID, 1001, "caller", "Please ask Dr Lee to call me back", T0 + 33, T0 + 36),
        ),
        store(sessions, CallHeartbeat(SID, T0 + 37)),
    ]
    if ended:
        results.append(
            store(
                sessions,
                CallEnded(SID, T0 + 50, "caller_hung_up", 18.0, 6.0, {}, segment=2, model="gpt-realtime"),
                expected={"transcript_turn": 1, "tool_invocation": 0},
            )
        )
    return results


def test_a_transfer_that_came_back_is_one_call_summarised_once_after_the_last_segment(
    sessions: sessionmaker[Session],
) -> None:
    first = first_segment_transferred(sessions)
    assert not any(result.call_over for result in first), "the caller may still come back"
    with sessions() as session:
        assert session.get(Call, SID).status == "transferring"  # type: ignore[union-attr]
    back = second_segment(sessions)
    assert [result.call_over for result in back] == [False, False, False, False, True]

    with sessions() as session:
        call = session.get(Call, SID)
        assert call is not None
        assert call.status == "ended"
        assert call.started_at == datetime.fromtimestamp(T0, UTC)  # the first segment's start
        assert call.ended_at == datetime.fromtimestamp(T0 + 50, UTC)
        assert call.model == "gpt-realtime-mini"
        assert call.end_reason == "caller_hung_up"
        assert call.audio_in_seconds == 28.0 and call.audio_out_seconds == 10.0
        assert call.expected_turns == 2
        segments = session.scalars(select(CallSegment).order_by(CallSegment.segment)).all()
        assert [(s.segment, s.model, s.end_reason) for s in segments] == [
            (1, "gpt-realtime-mini", "transferred"),
            (2, "gpt-realtime", "caller_hung_up"),
        ]
        assert call.cost_usd == sum((s.cost_usd or Decimal(0) for s in segments), Decimal(0))
        assert segments[1].cost_usd is not None and segments[1].cost_usd > segments[0].cost_usd  # type: ignore[operator]
        attempts = session.scalars(select(TransferAttempt)).all()
        assert [(a.segment, a.reason, a.result) for a in attempts] == [(1, "caller_asked", "no-answer")]

    assert classify_outcome(sessions, SID) == "caller_hung_up"
    summary = summarise(sessions, load_settings(_env_file=None), SID)
    assert summary is not None
    assert "I need to talk to someone" in summary and "call me back" in summary


def test_a_transfer_a_person_took_is_transferred_and_over_when_the_dial_completes(
    sessions: sessionmaker[Session],
) -> None:
    first_segment_transferred(sessions)
    result = store(sessions, CallNote(SID, T0 + 90, "transfer_result", {"status": "completed", "segment": 1}))
    assert result.call_over
    assert classify_outcome(sessions, SID) == "transferred"


def test_twilios_final_status_ends_a_call_whose_caller_hung_up_while_it_rang(
    sessions: sessionmaker[Session],
) -> None:
    first_segment_transferred(sessions)
    result = store(sessions, CallStatus(SID, T0 + 15, "completed", 15.0))
    assert result.call_over
    with sessions() as session:
        call = session.get(Call, SID)
        assert call is not None and call.twilio_status == "completed"


def test_the_sweeper_finalises_a_call_whose_second_segments_relay_died(
    sessions: sessionmaker[Session],
) -> None:
    first_segment_transferred(sessions)
    second_segment(sessions, ended=False)
    later = datetime.fromtimestamp(T0 + 37, UTC) + timedelta(seconds=200)
    assert sweep_stuck_calls(sessions, 90.0, now=later) == [SID]
    with sessions() as session:
        call = session.get(Call, SID)
        assert call is not None and call.status == "abandoned"
        live = session.scalars(select(CallSegment).where(CallSegment.ended_at.is_(None))).all()
        assert live == []
    assert classify_outcome(sessions, SID) == "failed"
    summary = summarise(sessions, load_settings(_env_file=None), SID)
    assert summary is not None and "call me back" in summary


def test_a_caller_who_never_came_back_from_an_unanswered_transfer_is_finalised(
    sessions: sessionmaker[Session],
) -> None:
    first_segment_transferred(sessions)
    store(sessions, CallNote(SID, T0 + 31, "transfer_result", {"status": "busy", "segment": 1}))
    assert sweep_stuck_calls(sessions, 90.0, now=datetime.fromtimestamp(T0 + 60, UTC)) == []
    assert sweep_stuck_calls(sessions, 90.0, now=datetime.fromtimestamp(T0 + 200, UTC)) == [SID]
    assert classify_outcome(sessions, SID) == "caller_hung_up"
