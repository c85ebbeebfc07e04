"""The relay's outbox: emit never blocks or raises, nothing is lost while the broker is down or after a
restart, records go out in order with deterministic task ids.

The broker here is a stand-in publisher that can be switched off or slowed down (the real Redis and worker
processes are in tests/integration).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.calls.events import (
    CallEnded,
    CallEvent,
    CallHeartbeat,
    CallStarted,
    Speaker,
    ToolInvocation,
    TranscriptTurn,
)
from app.db.engine import make_engine, make_session_factory
from app.db.models import Base, CallLiveness
from app.outbox import OutboxSink
from app.outbox.journal import Journal
from app.outbox.sink import task_id_for
from app.settings import Settings, load_settings

SID = "CA" + "e" * 32
T0 = 1_790_000_000.0


class SwitchableBroker:
    """Accepts publishes while `up`; raises like a refused connection otherwise."""

    def __init__(self) -> None:
        self.up = True
        self.delay = 0.0
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0
        self._lock = threading.Lock()

    def publish(self, task_id: str, envelope: dict[str, Any]) -> None:
        self.attempts += 1
        if self.delay:
            time.sleep(self.delay)
        if not self.up:
            raise ConnectionRefusedError("broker down")
        with self._lock:
            self.published.append((task_id, envelope))

    def close(self) -> None:
        pass

    def kinds(self) -> list[str]:
        return [envelope["record"]["kind"] for _, envelope in self.published]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'var' / 'app.db'}")


@pytest.fixture
def broker() -> SwitchableBroker:
    return SwitchableBroker()


@pytest.fixture
def sink(settings: Settings, broker: SwitchableBroker) -> Iterator[OutboxSink]:
    outbox = OutboxSink(settings, publisher=broker, direct_liveness=False, retry_max_seconds=0.2)
    outbox.start()
    yield outbox
    outbox.close(timeout=2)


def a_call(call_sid: str = SID, turns: int = 3) -> list[CallEvent]:
    events: list[CallEvent] = [
        CallStarted(call_sid, "+15551230000", "+15559990000", "CA", "gpt-realtime", T0)
    ]
    for seq in range(1, turns + 1):
        speaker: Speaker = "caller" if seq % 2 else "agent"
        events.append(TranscriptTurn(call_sid, seq, speaker, f"words {seq}", T0 + seq, T0 + seq + 0.5))
        events.append(CallHeartbeat(call_sid, T0 + seq + 0.6))
    events.append(ToolInvocation(call_sid, 1, "lookup_hours", {"date": "today"}, {"open": "9-5"}, True, 30.0))
    events.append(CallEnded(call_sid, T0 + 60, "caller_hung_up", 20.0, 20.0))
    return events


def emit_timed(sink: OutboxSink, events: list[CallEvent]) -> list[float]:
    durations = []
    for event in events:
        start = time.perf_counter()
        sink.emit(event)
        durations.append(time.perf_counter() - start)
    return durations


def test_a_call_is_published_in_order_with_its_turn_counts(
    sink: OutboxSink, broker: SwitchableBroker
) -> None:
    events = a_call()
    emit_timed(sink, events)
    assert sink.flush(5)
    assert broker.kinds() == [event.kind for event in events]
    ended_task_id, ended = broker.published[-1]
    assert ended_task_id == f"call_ended:{SID}"
    assert ended["meta"]["expected"] == {"transcript_turn": 3, "tool_invocation": 1}
    assert ended["meta"]["relay_id"] and ended["meta"]["journaled_at"] > 0
    stats = sink.stats()
    assert (stats.emitted, stats.journaled, stats.sent, stats.pending) == (
        len(events),
        len(events),
        len(events),
        0,
    )


def test_task_ids_are_deterministic_per_call_kind_and_seq() -> None:
    turn = {"kind": "transcript_turn", "call_sid": SID, "seq": 4, "ended_at": T0}
    assert task_id_for(turn) == task_id_for(dict(turn))
    assert task_id_for(turn) != task_id_for(turn | {"seq": 5})
    assert task_id_for(turn) != task_id_for(turn | {"ended_at": T0 + 1})  # a newer checkpoint of the turn
    assert task_id_for({"kind": "call_started", "call_sid": SID}) == f"call_started:{SID}"


def test_broker_down_emit_stays_fast_and_everything_goes_out_once_it_is_back(
    sink: OutboxSink, broker: SwitchableBroker
) -> None:
    broker.up = False
    durations = emit_timed(sink, a_call(turns=20))
    time.sleep(0.5)  # several failed publish rounds
    stats = sink.stats()
    assert broker.published == [] and stats.publish_failures >= 2 and not stats.broker_available
    assert stats.pending == len(durations) and stats.journaled == len(durations)
    assert max(durations) < 0.005  # emit never waits on the broker
    broker.up = True
    assert sink.flush(5)
    assert len(broker.published) == len(durations)
    assert len({task_id for task_id, _ in broker.published}) == len(durations)
    assert sink.stats().broker_available


def test_a_slow_broker_never_slows_emit(sink: OutboxSink, broker: SwitchableBroker) -> None:
    broker.delay = 0.2
    durations = emit_timed(sink, a_call(turns=10))
    assert max(durations) < 0.005
    broker.delay = 0.0
    assert sink.flush(10)


def test_unsent_records_survive_a_restart_and_are_sent_by_the_next_sink(
    settings: Settings, broker: SwitchableBroker
) -> None:
    broker.up = False
    first = OutboxSink(settings, publisher=broker, direct_liveness=False)
    first.start()
    emit_timed(first, a_call())
    assert first.close(timeout=0.5) is False  # could not publish: kept on disk
    assert Journal(settings.data_dir / "outbox.sqlite3").count_unsent() == len(a_call())

    broker.up = True
    second = OutboxSink(settings, publisher=broker, direct_liveness=False)
    second.start()
    try:
        assert second.flush(5)
        assert broker.kinds() == [event.kind for event in a_call()]
    finally:
        second.close()


def test_emit_never_raises_even_on_nonsense_or_after_close(
    sink: OutboxSink, broker: SwitchableBroker
) -> None:
    sink.emit("not an event")  # type: ignore[arg-type]
    sink.emit(CallStarted(SID, None, None, None, "gpt-realtime", T0))
    sink.emit(CallHeartbeat(SID, "soon"))  # type: ignore[arg-type]  # fails in the writer, not in emit
    assert sink.flush(5)
    sink.close()
    sink.emit(CallHeartbeat(SID, T0 + 1))
    stats = sink.stats()
    assert stats.emit_failures == 2 and stats.dropped_after_close == 1
    assert broker.kinds() == ["call_started"]


def test_live_calls_are_tracked_from_start_to_end(sink: OutboxSink) -> None:
    sink.emit(CallStarted(SID, None, None, None, "gpt-realtime", T0))
    sink.emit(CallHeartbeat(SID, T0 + 5))
    assert sink.flush(5)
    assert sink.live_calls() == {SID: T0 + 5}
    sink.emit(CallEnded(SID, T0 + 6, "caller_hung_up", 1.0, 1.0))
    sink.emit(CallHeartbeat(SID, T0 + 7))  # a heartbeat racing past the end does not revive it
    assert sink.flush(5)
    assert sink.live_calls() == {}


def test_the_relay_writes_liveness_straight_to_the_database(
    settings: Settings, broker: SwitchableBroker
) -> None:
    engine = make_engine(settings)
    Base.metadata.create_all(engine)
    broker.up = False  # the queue path is down; the direct path still proves the call alive
    outbox = OutboxSink(settings.model_copy(update={"heartbeat_seconds": 0.1}), publisher=broker)
    outbox.start()
    try:
        outbox.emit(CallStarted(SID, None, None, None, "gpt-realtime", T0))
        outbox.emit(CallHeartbeat(SID, T0 + 5))
        deadline = time.monotonic() + 5
        row = None
        while row is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with make_session_factory(engine)() as session:
                row = session.scalars(select(CallLiveness)).one_or_none()
        assert row is not None and row.last_heartbeat_at.timestamp() == pytest.approx(T0 + 5)
    finally:
        outbox.close(timeout=0.2)
        engine.dispose()


def test_journal_fsyncs_each_batch_and_prunes_what_was_sent_long_ago(tmp_path: Path) -> None:
    from app.outbox.journal import NewEntry

    journal = Journal(tmp_path / "outbox.sqlite3")
    try:
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        journal.append([NewEntry(f"t{n}", SID, "call_heartbeat", {"n": n}) for n in range(3)])
        pending = journal.unsent()
        assert [entry.envelope["n"] for entry in pending] == [0, 1, 2]
        journal.mark_sent([pending[0].id])
        assert journal.count_unsent() == 2
        assert journal.prune_sent(older_than_seconds=3600) == 0
        assert journal.prune_sent(older_than_seconds=-1) == 1
    finally:
        journal.close()
