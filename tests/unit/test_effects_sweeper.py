"""The stuck-call sweep, REST hang-up of ghost calls, and the post-call safety net.

Twilio is the simulated REST API from app/sim (a real HTTP server on 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calls.events import CallEnded, CallHeartbeat, CallStarted, TranscriptTurn, event_to_record
from app.db.call_records import record_event, record_liveness
from app.db.engine import make_engine, make_session_factory
from app.db.models import Base, Call, Delivery
from app.settings import load_settings
from app.sim.twilio_rest import SimulatedTwilioRest
from app.twilio.rest import TwilioRequests, TwilioRest, TwilioRestError
from workers.effects.errors import TransientEffectError
from workers.effects.outcome import classify_outcome
from workers.effects.post_call import calls_needing_post_call, transcript_complete
from workers.effects.sweeper import complete_remote_call, sweep_stuck_calls

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-token"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STUCK_SECONDS = 90.0


def sid(n: int) -> str:
    return f"CA{n:032d}"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def twilio() -> Iterator[tuple[SimulatedTwilioRest, TwilioRest]]:
    with (
        SimulatedTwilioRest(ACCOUNT, TOKEN) as sim,
        TwilioRest(TwilioRequests(ACCOUNT, TOKEN, sim.base_url)) as rest,
    ):
        yield sim, rest


def live_call(sessions: sessionmaker[Session], call_sid: str, last_heard: datetime) -> None:
    start = (last_heard - timedelta(seconds=30)).timestamp()
    with sessions.begin() as session:
        for event in (
            CallStarted(call_sid, "+15551230000", "+15559990000", "CA", "gpt-realtime", start),
            TranscriptTurn(call_sid, 1, "caller", "Hello?", start, start + 2),
            CallHeartbeat(call_sid, last_heard.timestamp()),
        ):
            record_event(session, event_to_record(event))


def status_of(sessions: sessionmaker[Session], call_sid: str) -> tuple[str, str | None]:
    with sessions() as session:
        call = session.get(Call, call_sid)
        assert call is not None
        return call.status, call.end_reason


def test_only_calls_silent_on_both_channels_are_swept(sessions: sessionmaker[Session]) -> None:
    stale = NOW - timedelta(seconds=STUCK_SECONDS + 5)
    live_call(sessions, sid(1), stale)  # dead relay: nothing from it
    live_call(sessions, sid(2), NOW - timedelta(seconds=10))  # heartbeats arriving through the queue
    live_call(sessions, sid(3), stale)  # queue backed up (Redis down) but the relay writes liveness
    with sessions.begin() as session:
        record_liveness(session, {sid(3): (NOW - timedelta(seconds=3)).timestamp()}, "relay-1")

    assert sweep_stuck_calls(sessions, STUCK_SECONDS, now=NOW) == [sid(1)]
    assert status_of(sessions, sid(1)) == ("abandoned", "abandoned")
    assert status_of(sessions, sid(2)) == ("live", None)
    assert status_of(sessions, sid(3)) == ("live", None)
    with sessions() as session:
        call = session.get(Call, sid(1))
        assert call is not None and call.ended_at == stale and call.swept_at == NOW
    assert sweep_stuck_calls(sessions, STUCK_SECONDS, now=NOW) == []  # a second sweep finds nothing new


def test_a_real_end_arriving_after_the_sweep_wins(sessions: sessionmaker[Session]) -> None:
    live_call(sessions, sid(1), NOW - timedelta(seconds=200))
    sweep_stuck_calls(sessions, STUCK_SECONDS, now=NOW)
    with sessions.begin() as session:
        ended = CallEnded(sid(1), (NOW - timedelta(seconds=150)).timestamp(), "caller_hung_up", 10.0, 10.0)
        record_event(session, event_to_record(ended))
    assert status_of(sessions, sid(1)) == ("ended", "caller_hung_up")


def test_ghost_call_is_completed_over_rest_once(
    sessions: sessionmaker[Session], twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    sim, rest = twilio
    live_call(sessions, sid(1), NOW - timedelta(seconds=200))
    sim.add_call(sid(1), status="in-progress")
    sweep_stuck_calls(sessions, STUCK_SECONDS, now=NOW)

    assert complete_remote_call(sessions, rest, sid(1)) == "done"
    assert complete_remote_call(sessions, rest, sid(1)) == "done"
    posts = [r for r in sim.requests if r.method == "POST"]
    assert len(posts) == 1 and posts[0].form == {"Status": "completed"}
    assert posts[0].path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid(1)}.json"
    call = sim.call(sid(1))
    assert call is not None and call.status == "completed"
    with sessions() as session:
        row = session.scalars(select(Delivery).where(Delivery.effect == "twilio_hangup")).one()
        assert row.detail == {"status_before": "in-progress", "completed": True}


def test_calls_twilio_already_ended_or_never_knew_are_not_posted(
    sessions: sessionmaker[Session], twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    sim, rest = twilio
    sim.add_call(sid(1), status="completed")
    for n in (1, 2):
        live_call(sessions, sid(n), NOW - timedelta(seconds=200))
        assert complete_remote_call(sessions, rest, sid(n)) == "done"
    assert all(r.method == "GET" for r in sim.requests)


def test_twilio_outage_is_retried_and_no_credentials_is_a_recorded_skip(
    sessions: sessionmaker[Session], twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    sim, rest = twilio
    live_call(sessions, sid(1), NOW - timedelta(seconds=200))
    sim.add_call(sid(1))
    sim.set_failure(503, times=1)
    with pytest.raises(TransientEffectError):
        complete_remote_call(sessions, rest, sid(1))
    assert complete_remote_call(sessions, rest, sid(1)) == "done"
    live_call(sessions, sid(2), NOW - timedelta(seconds=200))
    assert complete_remote_call(sessions, None, sid(2)) == "skipped"


def test_transcript_is_complete_only_when_every_reported_turn_is_stored(
    sessions: sessionmaker[Session],
) -> None:
    live_call(sessions, sid(1), NOW)
    ended = CallEnded(sid(1), NOW.timestamp(), "caller_hung_up", 5.0, 5.0)
    with sessions.begin() as session:
        record_event(
            session, event_to_record(ended), {"expected": {"transcript_turn": 2, "tool_invocation": 0}}
        )
    assert not transcript_complete(sessions, sid(1))
    with sessions.begin() as session:
        late = TranscriptTurn(sid(1), 2, "agent", "Goodbye!", NOW.timestamp() - 1, NOW.timestamp())
        record_event(session, event_to_record(late))
    assert transcript_complete(sessions, sid(1))
    assert not transcript_complete(sessions, sid(9))


def test_finished_calls_without_post_call_work_are_requeued_a_few_times(
    sessions: sessionmaker[Session],
) -> None:
    for n in (1, 2):
        live_call(sessions, sid(n), NOW - timedelta(minutes=10))
        with sessions.begin() as session:
            ended = CallEnded(sid(n), (NOW - timedelta(minutes=9)).timestamp(), "caller_hung_up", 5.0, 5.0)
            record_event(session, event_to_record(ended))
    classify_outcome(sessions, sid(2))  # call 2 got its post-call work
    assert calls_needing_post_call(sessions, now=NOW) == [sid(1)]
    assert calls_needing_post_call(sessions, now=NOW) == []  # spaced out
    later = NOW
    asked = 1
    for _ in range(5):
        later += timedelta(minutes=6)
        asked += len(calls_needing_post_call(sessions, now=later))
    assert asked == 3  # then it is left to people (failed_tasks, `voice-agent db failures`)


def test_rest_client_reads_status_and_treats_unknown_calls_as_ended(
    twilio: tuple[SimulatedTwilioRest, TwilioRest],
) -> None:
    sim, rest = twilio
    sim.add_call(sid(1), status="ringing")
    assert rest.call_status(sid(1)) == "ringing"
    assert rest.call_status(sid(2)) is None
    assert rest.complete_call(sid(2)) is False
    assert rest.complete_call(sid(1)) is True
    bad = TwilioRest(TwilioRequests(ACCOUNT, "wrong-token", sim.base_url))
    with pytest.raises(TwilioRestError) as refused:
        bad.call_status(sid(1))
    assert refused.value.status == 401 and not refused.value.retryable
    bad.close()


async def test_async_rest_client_shares_the_request_building(
    twilio: tuple[SimulatedTwilioRest, TwilioRest],
) -> None:
    from app.twilio.rest import AsyncTwilioRest

    sim, _ = twilio
    sim.add_call(sid(1))
    async with AsyncTwilioRest(TwilioRequests(ACCOUNT, TOKEN, sim.base_url)) as rest:
        assert await rest.call_status(sid(1)) == "in-progress"
        assert await rest.complete_call(sid(1)) is True
        assert await rest.call_status(sid(1)) == "completed"
        sim.set_failure(500, times=1)
        with pytest.raises(TwilioRestError) as failed:
            await rest.complete_call(sid(1))
        assert failed.value.retryable
