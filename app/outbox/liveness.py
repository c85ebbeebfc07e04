"""The relay's direct proof that its calls are alive, written straight to the database.

Heartbeats also travel through the outbox and the queue, but while Redis is down (and while the outbox
drains afterwards) they arrive late, and the stuck-call sweeper would take live calls for dead ones and
hang them up. So every `heartbeat_seconds` this thread upserts the newest heartbeat of each live call into
`call_liveness`, bypassing the queue. It is best effort: a database that is down or slow only delays these
writes (and is counted); the event loop never waits on it, and nothing is lost because the queue path
still carries every heartbeat.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.call_records import record_liveness
from app.db.engine import make_engine, make_session_factory
from app.logs import get_logger
from app.settings import Settings

log = get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.0


class LivenessWriter:
    """A daemon thread writing `snapshot()` (call sid -> last heartbeat time) every `interval` seconds."""

    def __init__(
        self,
        settings: Settings,
        snapshot: Callable[[], dict[str, float]],
        relay_id: str,
        *,
        interval: float | None = None,
    ) -> None:
        self._settings = settings
        self._snapshot = snapshot
        self._relay_id = relay_id
        self._interval = interval if interval is not None else settings.heartbeat_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-liveness", daemon=True)
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._written: dict[str, float] = {}
        self.writes = 0
        self.failures = 0

    def start(self) -> None:
        """Start writing every interval."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the database connections."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.write_once()

    def write_once(self) -> None:
        """Upsert the heartbeats that changed since the last successful write."""
        live = self._snapshot()
        beats = {sid: at for sid, at in live.items() if self._written.get(sid) != at}
        self._written = {sid: at for sid, at in self._written.items() if sid in live}
        if not beats:
            return
        try:
            if self._sessions is None:
                self._engine = make_engine(self._settings, connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS)
                self._sessions = make_session_factory(self._engine)
            with self._sessions.begin() as session:
                record_liveness(session, beats, self._relay_id)
        except Exception as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 60 == 0:
                log.warning("liveness_write_failed", error=type(exc).__name__, failures=self.failures)
            return
        self._written.update(beats)
        self.writes += 1
