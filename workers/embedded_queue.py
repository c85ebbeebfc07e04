# kombu's virtual transport base classes are untyped; the overrides below are typed at their edges.
# mypy: disable-error-code="no-untyped-call"
"""A kombu transport over one SQLite file: the embedded queue for running without Redis.

Why not kombu's own `filesystem://` or `sqla+sqlite://`: both forget a message the moment a worker takes
it (the file is deleted, the row hidden for good), so a worker killed mid-task loses the task. This one
keeps Redis's semantics instead: a taken message stays in the table with `delivered_at` set, is deleted on
ack, and becomes visible again once `visibility_timeout` passes without an ack (or at once on a requeue).
With `acks_late` that makes the embedded mode as loss-free as the Redis mode.

Routing is by queue name: Celery's direct exchange uses the queue name as its routing key, and bindings in
a virtual transport live in process memory, so a publisher (the relay) that never declared the worker's
queue still delivers to it. Fanout (remote control, gossip) is not supported; workers run without them.

Every process opens the file in WAL mode with autocommit; taking a message is one `BEGIN IMMEDIATE`
transaction, so two workers never take the same message.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import virtual

from app.lib.private_files import private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    delivery_tag TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS ix_messages_queue_id ON messages (queue, id);
"""
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
TRANSPORT_ALIAS = "voice-agent-sqlite"


def open_queue_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the queue file with the pragmas every process must agree on."""
    private_file(path)  # queued call events carry caller data: 0600 in a 0700 folder
    connection = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: a published message must survive a power cut, like a Redis AOF with fsync would.
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(SCHEMA)
    return connection


class Channel(virtual.Channel):
    """One kombu channel on the shared SQLite queue file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.connection.client.transport_options
        self._visibility_timeout = float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT))
        self._db = open_queue_database(Path(options["queue_path"]))
        self._lock = threading.Lock()

    # --- storage --------------------------------------------------------------------------------------
    def _put(self, queue: str, message: dict[str, Any], **_kwargs: Any) -> None:
        tag = message["properties"]["delivery_tag"]
        with self._lock:
            self._db.execute(
                "INSERT INTO messages (queue, delivery_tag, payload, delivered_at) VALUES (?, ?, ?, NULL) "
                "ON CONFLICT (delivery_tag) DO UPDATE SET delivered_at = NULL",
                (queue, tag, json.dumps(message)),
            )

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        now = time.time()
        visible_query = (
            "SELECT id, payload FROM messages WHERE queue = ? "
            "AND (delivered_at IS NULL OR delivered_at < ?) ORDER BY id LIMIT 1"
        )
        arguments = (queue, now - self._visibility_timeout)
        with self._lock:
            # Idle polls (ten a second per worker) only read; the write lock is taken when there is work.
            if self._db.execute(visible_query, arguments).fetchone() is None:
                raise Empty()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(visible_query, arguments).fetchone()
                if row is not None:
                    self._db.execute("UPDATE messages SET delivered_at = ? WHERE id = ?", (now, row[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if row is None:
            raise Empty()
        payload: dict[str, Any] = json.loads(row[1])
        return payload

    def _restore(self, message: Any) -> None:
        """Make a taken message visible again (requeue, or unacked at shutdown)."""
        with self._lock:
            updated = self._db.execute(
                "UPDATE messages SET delivered_at = NULL WHERE delivery_tag = ?", (message.delivery_tag,)
            ).rowcount
        if not updated:
            raw = message.serializable()
            raw["redelivered"] = True
            queue = message.delivery_info.get("routing_key") or self.deadletter_queue or "celery"
            self._put(str(queue), raw)

    def _restore_at_beginning(self, message: Any) -> None:
        self._restore(message)

    def _forget(self, delivery_tag: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE delivery_tag = ?", (delivery_tag,))

    def _size(self, queue: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ? AND delivered_at IS NULL", (queue,)
            ).fetchone()
        return int(row[0])

    def _purge(self, queue: str) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "DELETE FROM messages WHERE queue = ? AND delivered_at IS NULL", (queue,)
                ).rowcount
            )

    # --- acknowledgement -------------------------------------------------------------------------------
    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        """The task is done: forget the message for good."""
        self._forget(delivery_tag)
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Requeue (make visible now) or drop the message."""
        if not requeue:
            self._forget(delivery_tag)
        super().basic_reject(delivery_tag, requeue=requeue)

    # --- routing ---------------------------------------------------------------------------------------
    def _lookup(self, exchange: str, routing_key: str, default: str | None = None) -> list[str]:
        try:
            queues: list[str] = list(
                self.typeof(exchange).lookup(self.get_table(exchange), exchange, routing_key, None)
            )
        except KeyError:
            queues = []
        return queues or [routing_key or default or "celery"]

    def close(self) -> None:
        """Close the channel (unacked messages are restored by kombu first) and the file."""
        super().close()
        with self._lock:
            self._db.close()


class Transport(virtual.Transport):
    """Register with kombu under `TRANSPORT_ALIAS` (see `register_transport`)."""

    Channel = Channel
    default_port = 0  # type: ignore[assignment]  # kombu declares it None: no port for a file
    driver_type = "sqlite"
    driver_name = "sqlite3"
    polling_interval = 0.1
    connection_errors = (sqlite3.OperationalError,)
    channel_errors = (sqlite3.OperationalError,)

    def driver_version(self) -> str:
        """The SQLite library version."""
        return sqlite3.sqlite_version


def register_transport() -> str:
    """Make `voice-agent-sqlite://` resolve to this transport; returns the URL to use."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault(TRANSPORT_ALIAS, f"{__name__}:Transport")
    return f"{TRANSPORT_ALIAS}://localhost/"


def queued_messages(path: Path, queue: str = "celery") -> int:
    """How many messages wait in `queue` (taken-but-unacked ones excluded), for tests and metrics."""
    connection = open_queue_database(path)
    try:
        row = connection.execute(
            "SELECT COUNT(*) FROM messages WHERE queue = ? AND delivered_at IS NULL", (queue,)
        ).fetchone()
        return int(row[0])
    finally:
        connection.close()
