"""The outbox's backlog figures stay true while the broker hangs: what waits is counted, and its age grows
at read time, even though the dispatcher is stuck in a publish and cannot recount."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from app.calls.events import CallHeartbeat
from app.outbox import OutboxSink
from app.settings import load_settings


class HangingBroker:
    """A broker whose publish never answers (until released): a dead host with a long timeout."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def publish(self, task_id: str, envelope: dict[str, Any]) -> None:
        self.entered.set()
        self.release.wait(30)
        raise ConnectionError("broker gone")

    def close(self) -> None:
        pass


def test_backlog_and_its_age_show_while_the_dispatcher_hangs(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path / "var")
    broker = HangingBroker()
    sink = OutboxSink(settings, publisher=broker, direct_liveness=False)
    sink.start()
    try:
        sink.emit(CallHeartbeat("CA1", time.time()))
        assert broker.entered.wait(10), "the dispatcher is now stuck in a publish"
        sink.emit(CallHeartbeat("CA1", time.time() + 1))
        sink.emit(CallHeartbeat("CA1", time.time() + 2))
        deadline = time.monotonic() + 10
        while sink.stats().journaled < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        first = sink.stats()
        time.sleep(0.3)
        later = sink.stats()
        assert first.pending == later.pending == 3
        assert later.oldest_pending_seconds >= first.oldest_pending_seconds + 0.25
    finally:
        broker.release.set()
        sink.close(timeout=1)
