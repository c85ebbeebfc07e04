"""A back office over a migrated SQLite database holding a few calls, stored the way workers store them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.backoffice.office import BackOffice
from app.calls.events import (
    CallEnded,
    CallEvent,
    CallNote,
    CallStarted,
    CallStatus,
    ConsentDecision,
    ConsentNoticeAttempt,
    MemorySink,
    RecordingStarted,
    RecordingStatus,
    ToolInvocation,
    TranscriptTurn,
    event_to_record,
)
from app.db.call_records import record_event
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.models import Call, CallOutcome, CallSummary
from app.main import create_app
from app.settings import Settings, load_settings

TOKEN = "staff-token-0123456789abcdef"
BOOKED = "CA" + "1" * 32
HUNG_UP = "CA" + "2" * 32
LIVE = "CA" + "3" * 32
# 2026-11-30 15:00 UTC is 10:00 in New York; the hung-up call is the next day, the live one the day after.
T_BOOKED = datetime(2026, 11, 30, 15, 0, tzinfo=UTC).timestamp()
T_HUNG_UP = T_BOOKED + 86_400
T_LIVE = T_BOOKED + 2 * 86_400
# What a transfer that came back, one that connected and an emergency leave (`open_world(..., records=True)`),
# on the three days before the booked call.
CAME_BACK = "CA" + "4" * 32
CONNECTED = "CA" + "5" * 32
EMERGENCY = "CA" + "6" * 32
T_CAME_BACK = T_BOOKED - 86_400
T_CONNECTED = T_BOOKED - 2 * 86_400
T_EMERGENCY = T_BOOKED - 3 * 86_400
CAME_BACK_RECORDING = "RE" + "c" * 32
CAME_BACK_RECORDING_URL = (
    f"https://api.twilio.com/2010-04-01/Accounts/AC{'f' * 32}/Recordings/{CAME_BACK_RECORDING}"
)
NOTICE = "This call may be recorded for quality."


def booked_call() -> list[CallEvent]:
    t = T_BOOKED
    return [
        CallStarted(BOOKED, "+15551234567", "+15559990000", "CA", "gpt-realtime-mini", t),
        ConsentDecision(BOOKED, "auto", "CA", True, "two-party consent state", notice_played_at=t + 2.5),
        RecordingStarted(BOOKED, "RE" + "b" * 32, t + 2.6),
        TranscriptTurn(
            BOOKED, 1, "agent", "Hello, this call may be recorded. How can I help?", t + 0.1, t + 3
        ),
        TranscriptTurn(
            BOOKED, 2, "caller", "I'd like a cleaning on Tuesday", t + 3.0, t + 5.2, speech_ended_at=t + 5.0
        ),
        TranscriptTurn(BOOKED, 3, "agent", "Let me check Tuesday for you and then", t + 5.6, t + 6.5, True),
        TranscriptTurn(BOOKED, 4, "caller", "Morning please", t + 6.4, t + 7.6, speech_ended_at=t + 7.4),
        ToolInvocation(
            BOOKED,
            1,
            "book_appointment",
            {"service": "cleaning", "start": "2026-12-01T10:00:00-05:00"},
            {"booked": True, "confirmation": "BK-1"},
            True,
            143.2,
        ),
        TranscriptTurn(BOOKED, 5, "agent", "You're booked for Tuesday at ten.", t + 8.0, t + 10.0),
        CallNote(BOOKED, t + 11, "message", {"message": "Bring X-rays", "caller_name": "Sam Lee"}),
        CallEnded(BOOKED, t + 12.0, "caller_hung_up", 12.0, 6.0, {"input_tokens": 100}),
    ]


def hung_up_call() -> list[CallEvent]:
    t = T_HUNG_UP
    return [
        CallStarted(HUNG_UP, "+15557654321", "+15559990000", "NY", "gpt-realtime-mini", t),
        TranscriptTurn(HUNG_UP, 1, "agent", "Hello, how can I help?", t + 0.2, t + 1.5),
        TranscriptTurn(HUNG_UP, 2, "caller", "Never mind, wrong number", t + 2.0, t + 3.5),
        CallNote(HUNG_UP, t + 3.6, "transfer_started", {"reason": "caller_request"}),
        CallNote(HUNG_UP, t + 20, "transfer_result", {"status": "no-answer"}),
        CallEnded(HUNG_UP, t + 30.0, "caller_hung_up", 30.0, 2.0),
    ]


def live_call() -> list[CallEvent]:
    return [
        CallStarted(LIVE, "+15550001111", "+15559990000", None, "gpt-realtime-mini", T_LIVE),
        TranscriptTurn(LIVE, 1, "agent", "Hello there.", T_LIVE + 0.1, T_LIVE + 1.0),
    ]


def came_back_call() -> list[CallEvent]:
    """Transferred, nobody answered, back to the agent who took a message; the notice heard at the 2nd try."""
    t, sid, model = T_CAME_BACK, CAME_BACK, "gpt-realtime-mini"
    usage = {"input_audio_tokens": 200, "output_audio_tokens": 300, "input_text_tokens": 500}
    return [
        CallStarted(sid, "+15553334444", "+15559990000", "CA", model, t),
        ConsentNoticeAttempt(sid, 1, t + 1.0, False, "This call may", "interrupted"),
        ConsentNoticeAttempt(sid, 2, t + 6.0, True, NOTICE),
        ConsentDecision(sid, "auto", "CA", True, "two-party consent state", notice_played_at=t + 6.0),
        RecordingStarted(sid, CAME_BACK_RECORDING, t + 6.2),
        TranscriptTurn(sid, 1, "agent", f"Hello. {NOTICE}", t + 0.1, t + 6.0),
        TranscriptTurn(
            sid, 2, "caller", "Can I speak to Dr Patel?", t + 6.5, t + 8.0, speech_ended_at=t + 8.0
        ),
        TranscriptTurn(sid, 3, "agent", "Let me put you through.", t + 8.5, t + 10.0),
        CallNote(sid, t + 10.5, "transfer_started", {"reason": "caller_asked", "segment": 1}),
        CallEnded(sid, t + 11.0, "transferred", 11.0, 6.0, usage, segment=1, model=model),
        CallNote(sid, t + 35.0, "transfer_result", {"status": "no-answer", "segment": 1}),
        CallStarted(sid, "+15553334444", "+15559990000", "CA", model, t + 36.0, segment=2),
        TranscriptTurn(sid, 1001, "agent", "Nobody answered. Can I take a message?", t + 36.2, t + 39.0),
        TranscriptTurn(sid, 1002, "caller", "Tell her my crown came off", t + 39.5, t + 41.0),
        CallNote(
            sid,
            t + 42.0,
            "message",
            {"message": "My crown came off", "caller_name": "Ana Ruiz", "callback_number": "+15553334444"},
        ),
        CallEnded(sid, t + 50.0, "caller_hung_up", 14.0, 6.0, usage, segment=2, model=model),
        CallStatus(sid, t + 50.5, "completed", 50.0),
        RecordingStatus(sid, CAME_BACK_RECORDING, "completed", t + 51, CAME_BACK_RECORDING_URL, 43.0),
    ]


def connected_call() -> list[CallEvent]:
    """Handed to a person who took the call."""
    t, sid = T_CONNECTED, CONNECTED
    return [
        CallStarted(sid, "+15556667777", "+15559990000", "NY", "gpt-realtime-mini", t),
        TranscriptTurn(sid, 1, "agent", "Hello, how can I help?", t + 0.2, t + 1.5),
        CallNote(sid, t + 5.0, "transfer_started", {"reason": "caller_asked", "segment": 1}),
        CallEnded(sid, t + 6.0, "transferred", 6.0, 2.0, segment=1),
        CallNote(sid, t + 20.0, "transfer_result", {"status": "completed", "segment": 1}),
    ]


def emergency_call() -> list[CallEvent]:
    """An emergency with no transfer number: staff alerted during the call."""
    t, sid = T_EMERGENCY, EMERGENCY
    return [
        CallStarted(sid, "+15558889999", "+15559990000", "NY", "gpt-realtime-mini", t),
        TranscriptTurn(sid, 1, "caller", "My face is swelling and I can't breathe", t + 1.0, t + 3.0),
        CallNote(sid, t + 3.5, "emergency", {}),
        CallNote(sid, t + 3.6, "transfer_failed", {"why": "no_human"}),
        CallNote(sid, t + 3.7, "staff_alert", {"why": "emergency_no_human"}),
        CallEnded(sid, t + 9.0, "caller_hung_up", 9.0, 5.0),
    ]


def settings_for(tmp_path: Path, token: str | None = TOKEN) -> Settings:
    return load_settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'office.db'}",
        data_dir=str(tmp_path / "var"),
        twilio_auth_token="twilio-token",
        twilio_account_sid="AC" + "f" * 32,
        backoffice_token=token,
    )


@dataclass
class World:
    app: FastAPI
    client: TestClient
    sessions: sessionmaker[Session]

    @property
    def office(self) -> BackOffice:
        office: BackOffice = self.app.state.backoffice
        return office

    def store(self, events: list[CallEvent]) -> None:
        with self.sessions.begin() as session:
            for event in events:
                record_event(session, event_to_record(event))


def open_world(
    tmp_path: Path, *, token: str | None = TOKEN, calls: bool = True, records: bool = False
) -> Iterator[World]:
    settings = settings_for(tmp_path, token)
    upgrade_database(settings)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    app = create_app(settings, sink=MemorySink())
    # https, so the client sends the Secure cookies back; no lifespan: no relay, so no call is live here.
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    world = World(app, client, sessions)
    if calls:
        world.store(booked_call() + hung_up_call() + live_call())
        with sessions.begin() as session:
            session.add(CallOutcome(call_sid=BOOKED, outcome="booked", reasons=["tool book_appointment"]))
            session.add(CallSummary(call_sid=BOOKED, text="Sam booked a cleaning for Tuesday.", method="llm"))
            session.add(CallOutcome(call_sid=HUNG_UP, outcome="caller_hung_up", reasons=[]))
    if records:
        world.store(came_back_call() + connected_call() + emergency_call())
        with sessions.begin() as session:
            for sid, outcome in (
                (CAME_BACK, "message_taken"),
                (CONNECTED, "transferred"),
                (EMERGENCY, "emergency"),
            ):
                session.add(CallOutcome(call_sid=sid, outcome=outcome, reasons=[]))
            session.add(
                CallSummary(call_sid=CAME_BACK, text="Ana left a message for Dr Patel.", method="llm")
            )
            came_back = session.get(Call, CAME_BACK)
            assert came_back is not None and came_back.cost_breakdown  # priced from its two segments
            parts = came_back.cost_breakdown | {"summary": "0.00020"}  # as the summary step adds it
            came_back.cost_breakdown = parts
            came_back.cost_usd = sum((Decimal(value) for value in parts.values()), Decimal(0))
    try:
        yield world
    finally:
        client.close()
        if token is not None:
            world.office.store.close()
        engine.dispose()
