"""Retention and `db forget` behaviour, written once and run on SQLite (unit) and PostgreSQL (integration).

Each check takes a session factory on an empty, migrated database and a Twilio REST client pointed at the
simulated API, whose recordings are the ones that must disappear with the calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
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
from app.db.call_records import record_event, record_liveness
from app.db.ledger import DONE, record_failed_task, settle_effect
from app.db.models import Base, Call
from app.sim.twilio_rest import SimulatedTwilioRest
from app.twilio.rest import TwilioRest
from workers.effects.retention import forget_caller, purge_expired_calls

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CALLER = "+15551230000"
OTHER = "+15559876543"


def sid(n: int) -> str:
    return f"CA{n:032d}"


def store_call(
    sessions: sessionmaker[Session], sim: SimulatedTwilioRest, call_sid: str, number: str, ended: datetime
) -> str:
    """A finished call with a row in every table; returns the recording sid Twilio holds for it."""
    sim.add_call(call_sid)
    recording = start_recording(sim, call_sid)
    start = (ended - timedelta(minutes=3)).timestamp()
    events: list[CallEvent] = [
        CallStarted(call_sid, number, "+15550001111", "CA", "gpt-realtime-mini", start),
        TranscriptTurn(call_sid, 1, "caller", "My number is 555 123 0000", start + 1, start + 3),
        TranscriptTurn(call_sid, 2, "agent", "Thanks, you're booked.", start + 4, start + 6),
        ToolInvocation(
            call_sid, 1, "book_appointment", {"phone": number}, {"confirmation": "BK1"}, True, 12.0
        ),
        CallNote(call_sid, start + 5, "message_taken", {"message": "call me back"}),
        ConsentDecision(call_sid, "auto", "CA", True, "two-party state", start + 1),
        RecordingStarted(call_sid, recording, start + 2),
        CallEnded(call_sid, ended.timestamp(), "caller_hung_up", 170.0, 60.0),
    ]
    with sessions.begin() as session:
        for event in events:
            record_event(session, event_to_record(event))
        record_liveness(session, {call_sid: start + 100}, "relay-1")
        settle_effect(session, call_sid, "summary", DONE, {})
        record_failed_task(
            session,
            task_name="voice_agent.sync_crm",
            task_id=f"crm_sync:{call_sid}",
            error_type="PermanentEffectError",
            error_message="",
            attempts=1,
            payload={"call_sid": call_sid},
            call_sid=call_sid,
            effect="crm_sync",
        )
    return recording


def start_recording(sim: SimulatedTwilioRest, call_sid: str) -> str:
    """Start a recording on the simulated account over REST, as the relay does."""
    response = httpx.post(
        f"{sim.base_url}/2010-04-01/Accounts/{sim.account_sid}/Calls/{call_sid}/Recordings.json",
        auth=(sim.account_sid, sim.auth_token),
    )
    response.raise_for_status()
    return str(response.json()["sid"])


def rows_per_table(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def check_purge_removes_only_calls_past_retention(
    sessions: sessionmaker[Session], sim: SimulatedTwilioRest, twilio: TwilioRest
) -> None:
    old = store_call(sessions, sim, sid(1), CALLER, NOW - timedelta(days=91))
    recent = store_call(sessions, sim, sid(2), CALLER, NOW - timedelta(days=89))
    before = rows_per_table(sessions)
    removed = purge_expired_calls(sessions, twilio, retention_days=90, now=NOW)
    after = rows_per_table(sessions)
    assert removed["calls"] == 1 and removed["recordings_deleted_at_twilio"] == 1
    for table, count in before.items():  # each call has the same rows: the old one's half went
        assert removed[table] == count // 2 and after[table] == count - count // 2, table
    with sessions() as session:
        assert session.scalars(select(Call.call_sid)).all() == [sid(2)]
    assert old not in sim.recordings and recent in sim.recordings
    deletes = [r for r in sim.requests if r.method == "DELETE"]
    assert [r.path.rsplit("/", 1)[-1] for r in deletes] == [f"{old}.json"]


def check_a_recording_twilio_cannot_delete_keeps_its_call_for_the_next_run(
    sessions: sessionmaker[Session], sim: SimulatedTwilioRest, twilio: TwilioRest
) -> None:
    recording = store_call(sessions, sim, sid(1), CALLER, NOW - timedelta(days=200))
    sim.set_failure(503, times=1)
    removed = purge_expired_calls(sessions, twilio, retention_days=90, now=NOW)
    assert removed["calls"] == 0 and removed["calls_kept_for_retry"] == 1
    assert recording in sim.recordings
    removed = purge_expired_calls(sessions, twilio, retention_days=90, now=NOW)
    assert removed["calls"] == 1 and recording not in sim.recordings
    assert rows_per_table(sessions)["calls"] == 0


def check_forget_removes_every_call_of_one_caller_and_nothing_else(
    sessions: sessionmaker[Session], sim: SimulatedTwilioRest, twilio: TwilioRest
) -> None:
    mine = [store_call(sessions, sim, sid(n), CALLER, NOW - timedelta(days=n)) for n in (1, 2)]
    theirs = store_call(sessions, sim, sid(3), OTHER, NOW - timedelta(days=1))
    removed = forget_caller(sessions, twilio, CALLER)
    assert removed["calls"] == 2 and removed["transcript_turns"] == 4 and removed["recordings"] == 2
    assert removed["tool_invocations"] == 2 and removed["call_notes"] == 2 and removed["failed_tasks"] == 2
    assert removed["recordings_deleted_at_twilio"] == 2
    assert sim.recordings & set(mine) == set() and theirs in sim.recordings
    left = rows_per_table(sessions)
    assert left["calls"] == 1 and left["transcript_turns"] == 2 and left["recordings"] == 1
    with sessions() as session:
        assert session.scalars(select(Call.from_number)).all() == [OTHER]
