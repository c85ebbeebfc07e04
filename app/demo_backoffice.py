"""The demo's back office: the real outbox, queue, worker and database on the embedded defaults.

The demo call's events go through the relay's durable outbox to the embedded on-disk queue (or Redis, if
`REDIS_URL` is set), a real `voice-agent worker` process stores the transcript and runs the post-call work,
and the demo prints the outcome and summary staff would get, read back from the database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy import text

from app.calls.events import CallEvent, CallEventSink
from app.db.engine import make_engine
from app.db.migrate import upgrade_database
from app.outbox import OutboxSink
from app.settings import Settings

WORKER_STOP_SECONDS = 10.0


class FanOutSink:
    """Hands every event to each of several sinks."""

    def __init__(self, *sinks: CallEventSink) -> None:
        self._sinks = sinks

    def emit(self, event: CallEvent) -> None:
        for sink in self._sinks:
            sink.emit(event)


class BackOffice:
    """Migrated database, outbox and one worker process, for the length of an `async with` block."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox = OutboxSink(settings)
        self._worker: subprocess.Popen[bytes] | None = None
        self._log_path = Path(settings.data_dir) / "demo-worker.log"

    async def __aenter__(self) -> BackOffice:
        await asyncio.to_thread(upgrade_database, self.settings)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log_path.open("wb")
        self._worker = subprocess.Popen(  # noqa: ASYNC220 - starting a child is quick; it runs on its own
            # No metrics listener: the demo's worker must not compete for a real worker's port.
            [sys.executable, "-m", "workers.cli", "worker", "--concurrency", "1", "--name", "demo@%h"]
            + ["--metrics-port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        log.close()
        self.outbox.start()
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.outbox.close, 10.0)
        worker = self._worker
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                await asyncio.to_thread(worker.wait, WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                worker.kill()

    async def wait_for_summary(self, call_sid: str, timeout: float = 60.0) -> tuple[str, str] | None:
        """The call's outcome and summary once the worker has stored them, or None after `timeout`."""
        return await asyncio.to_thread(self._poll_summary, call_sid, timeout)

    def _poll_summary(self, call_sid: str, timeout: float) -> tuple[str, str] | None:
        engine = make_engine(self.settings)
        deadline = time.monotonic() + timeout
        query = text(
            "SELECT o.outcome, s.text FROM call_outcomes o JOIN call_summaries s ON s.call_sid = o.call_sid "
            "WHERE o.call_sid = :sid"
        )
        try:
            while time.monotonic() < deadline:
                if self._worker is not None and self._worker.poll() is not None:
                    return None  # the worker died; its log says why
                with engine.connect() as connection:
                    row = connection.execute(query, {"sid": call_sid}).first()
                if row is not None:
                    return str(row[0]), str(row[1])
                time.sleep(0.2)
            return None
        finally:
            engine.dispose()

    @property
    def worker_log(self) -> Path:
        return self._log_path
