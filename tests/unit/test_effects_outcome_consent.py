"""Outcome classification and the recording-consent audit, on stored calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import (
    CallEnded,
    CallEvent,
    CallNote,
    CallStarted,
    ConsentDecision,
    RecordingStarted,
    ToolInvocation,
    TranscriptTurn,
    event_to_record,
)
from app.db.call_records import record_event
from app.db.engine import make_engine, make_session_factory
from app.db.models import Base, CallOutcome, ConsentAudit, Delivery
from app.settings import load_settings
from workers.effects.consent import audit_consent
from workers.effects.outcome import classify_outcome

SID = "CA" + "c" * 32
T0 = 1_790_000_000.0


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def call_with(
    sessions: sessionmaker[Session], *events: CallEvent, end_reason: str = "caller_hung_up"
) -> None:
    story: list[CallEvent] = [
        CallStarted(SID, "+15551230000", "+15559990000", "NY", "gpt-realtime-mini", T0),
        TranscriptTurn(SID, 1, "agent", "Hello!", T0, T0 + 1),
        *events,
        CallEnded(SID, T0 + 60, end_reason, 30.0, 20.0),
    ]
    with sessions.begin() as session:
        for event in story:
            record_event(session, event_to_record(event))


def tool(seq: int, name: str, ok: bool = True) -> ToolInvocation:
    return ToolInvocation(SID, seq, name, {}, {}, ok, 50.0)


@pytest.mark.parametrize(
    ("events", "end_reason", "expected"),
    [
        ((CallNote(SID, T0 + 5, "emergency"), tool(1, "book_appointment")), "caller_hung_up", "emergency"),
        ((CallNote(SID, T0 + 5, "transferred"),), "transferred", "transferred"),
        ((tool(1, "lookup_hours"), tool(2, "book_appointment")), "agent_hung_up", "booked"),
        ((tool(1, "book_appointment", ok=False),), "failed", "failed"),
        ((tool(1, "book_appointment", ok=False),), "caller_hung_up", "caller_hung_up"),
        ((tool(1, "lookup_hours"),), "caller_hung_up", "information_given"),
        ((), "caller_hung_up", "caller_hung_up"),
        ((), "agent_hung_up", "agent_hung_up"),
        ((), "idle", "idle"),
        ((), "capped", "capped"),
        ((), "abandoned", "failed"),
        ((CallNote(SID, T0 + 5, "model_failed"),), "agent_hung_up", "failed"),
    ],
)
def test_outcome_follows_the_documented_rules(
    sessions: sessionmaker[Session], events: tuple[CallEvent, ...], end_reason: str, expected: str
) -> None:
    call_with(sessions, *events, end_reason=end_reason)
    assert classify_outcome(sessions, SID) == expected


def test_outcome_is_classified_once_and_unknown_calls_are_ignored(sessions: sessionmaker[Session]) -> None:
    call_with(sessions, tool(1, "book_appointment"))
    assert classify_outcome(sessions, SID) == "booked"
    assert classify_outcome(sessions, SID) == "booked"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallOutcome)) == 1
        delivery = session.scalars(select(Delivery).where(Delivery.effect == "outcome")).one()
        assert (delivery.status, delivery.attempts) == ("done", 1)
    assert classify_outcome(sessions, "CA" + "0" * 32) is None


@pytest.mark.parametrize(
    ("events", "verdict"),
    [
        (
            (
                ConsentDecision(SID, "auto", "CA", True, "two-party", notice_played_at=T0 + 1),
                RecordingStarted(SID, "RE1", T0 + 2),
            ),
            "compliant",
        ),
        (
            (
                ConsentDecision(SID, "auto", "CA", True, "two-party", notice_played_at=T0 + 5),
                RecordingStarted(SID, "RE1", T0 + 2),
            ),
            "violation",
        ),
        (
            (
                ConsentDecision(SID, "always", "CA", True, "always announce"),
                RecordingStarted(SID, "RE1", T0 + 2),
            ),
            "violation",
        ),
        (
            (
                ConsentDecision(SID, "auto", "NY", False, "one-party state"),
                RecordingStarted(SID, "RE1", T0 + 2),
            ),
            "compliant",
        ),
        ((ConsentDecision(SID, "auto", "CA", True, "two-party"),), "compliant"),
        ((RecordingStarted(SID, "RE1", T0 + 2),), "violation"),
        ((), "not_applicable"),
    ],
)
def test_consent_audit_checks_the_notice_came_before_any_recording(
    sessions: sessionmaker[Session], events: tuple[CallEvent, ...], verdict: str
) -> None:
    call_with(sessions, *events)
    assert audit_consent(sessions, SID) == verdict
    with sessions() as session:
        audit = session.get(ConsentAudit, SID)
        assert audit is not None and audit.verdict == verdict and audit.reason


def test_consent_audit_runs_once(sessions: sessionmaker[Session]) -> None:
    call_with(sessions, RecordingStarted(SID, "RE1", T0 + 2))
    assert audit_consent(sessions, SID) == "violation"
    # A decision arriving after the audit does not rerun it: the audit is a record of what was known.
    with sessions.begin() as session:
        decision = ConsentDecision(SID, "auto", "NY", False, "one-party")
        record_event(session, event_to_record(decision))
    assert audit_consent(sessions, SID) == "violation"
