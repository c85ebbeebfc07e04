"""Stopping Redis during calls loses nothing and the calls keep flowing.

The relay side is a real OutboxSink publishing to a private redis-server that the test stops in the middle
of two calls and starts again later; a real worker process consumes from it. While Redis is down `emit`
stays as fast as ever, the journal holds everything, the relay keeps proving its live call alive straight
to PostgreSQL (so the sweeper leaves it alone), and once Redis is back every event is stored exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.calls.events import CallEvent, CallHeartbeat
from app.db.engine import make_session_factory
from app.outbox import OutboxSink
from tests.integration.workers_harness import (
    Database,
    RedisServer,
    Services,
    call_sid,
    relay_settings,
    scripted_call,
    wait_until,
)
from workers.effects.sweeper import sweep_stuck_calls

pytestmark = pytest.mark.integration


def test_stopping_redis_during_calls_loses_nothing_and_blocks_nothing(
    tmp_path: Path, pg: Database, pg_url: str, broker: RedisServer, services: Services
) -> None:
    services.worker("outage", concurrency=2)
    settings = relay_settings(tmp_path, pg_url, broker.url, heartbeat_seconds=0.2)
    sink = OutboxSink(settings)
    sink.start()
    long_call, short_call = call_sid(21), call_sid(22)
    long_events = scripted_call(long_call, turns=8, start=time.time() - 60)  # under way for a minute
    short_events = scripted_call(short_call, turns=4, start=time.time() + 1)
    emit_costs: list[float] = []

    def emit(events: list[CallEvent]) -> None:
        for event in events:
            start = time.perf_counter()
            sink.emit(event)
            emit_costs.append(time.perf_counter() - start)

    try:
        emit(long_events[:8])  # the long call is under way...
        wait_until(lambda: pg.scalar("SELECT count(*) FROM transcript_turns") >= 2, 20, "the first turns")

        broker.stop()  # ...when Redis goes away
        outage_started = time.monotonic()
        emit(long_events[8:-1])  # the long call goes on, still live
        emit(short_events)  # a whole second call starts and ends during the outage
        for _ in range(8):  # the relay keeps heartbeating the live call, as it does every heartbeat_seconds
            emit([CallHeartbeat(long_call, time.time())])
            time.sleep(0.25)
        during = sink.stats()
        assert not during.broker_available and during.publish_failures >= 1
        assert during.pending >= len(long_events[8:-1]) + len(short_events)
        # Through the queue the long call has been silent for far longer than the threshold...
        stuck_threshold = 5.0
        last_seen = pg.scalar("SELECT last_seen_at FROM calls WHERE call_sid = :sid", sid=long_call)
        assert time.time() - last_seen.timestamp() > stuck_threshold
        # ...but the relay's direct liveness keeps it from being swept and hung up.
        assert sweep_stuck_calls(make_session_factory(pg.engine), stuck_threshold) == []
        assert pg.scalar("SELECT status FROM calls WHERE call_sid = :sid", sid=long_call) == "live"

        broker.start()
        outage = time.monotonic() - outage_started
        emit(long_events[-1:])
        assert sink.flush(30), sink.stats()
        caught_up = time.monotonic() - outage_started - outage
        wait_until(lambda: pg.scalar("SELECT count(*) FROM call_summaries") == 2, 30, "both summaries")
    finally:
        sink.close()

    expected = {
        sid: sum(1 for event in events if event.kind == "transcript_turn")
        for sid, events in ((long_call, long_events), (short_call, short_events))
    }
    stored = dict(pg.rows("SELECT call_sid, count(*) FROM transcript_turns GROUP BY call_sid"))
    assert stored == expected
    statuses = dict(pg.rows("SELECT call_sid, status FROM calls"))
    assert statuses == {long_call: "ended", short_call: "ended"}
    assert pg.scalar("SELECT count(*) FROM call_outcomes") == 2
    assert pg.scalar("SELECT count(*) FROM failed_tasks") == 0
    stats = sink.stats()
    assert stats.sent == stats.journaled == len(emit_costs) and stats.pending == 0
    assert max(emit_costs) < 0.005
    print(
        f"\nRedis down {outage:.1f} s: {len(emit_costs)} emits, max {max(emit_costs) * 1e6:.0f} us; "
        f"{during.publish_failures} failed publish rounds; backlog of {during.pending} published "
        f"{caught_up:.2f} s after Redis came back"
    )
