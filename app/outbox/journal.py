"""The relay's durable journal of call events: an SQLite file on the relay's own disk.

Every event is appended here before anyone tries to publish it, and marked sent only after the broker took
it, so a Redis outage, a slow Redis or a relay restart loses nothing: what was never confirmed is sent
again. Only the outbox's own threads touch it (one writer, one dispatcher), never the event loop.

WAL with synchronous=FULL: each appended batch is fsynced before it counts as journaled, so events survive
a machine crash or power cut, not only a process crash (NORMAL would lose the last batches on power loss).
The cost is one fsync per batch, not per event, because the writer thread appends whatever queued up
meanwhile in one transaction.

One relay process per journal file: two processes sharing one would publish each other's rows twice
(harmless, the workers are idempotent, but wasteful).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.lib.private_files import private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    call_sid TEXT NOT NULL,
    kind TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS ix_outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
"""


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A record about to be journaled."""

    task_id: str
    call_sid: str
    kind: str
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A journaled record the broker has not confirmed yet."""

    id: int
    task_id: str
    envelope: dict[str, Any]


class Journal:
    """Append, list unsent, mark sent; each call is one short transaction, serialised by a lock because
    the writer and dispatcher threads share the connection."""

    def __init__(self, path: Path) -> None:
        private_file(path)  # caller numbers and transcripts: 0600 in a 0700 folder
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def append(self, entries: Sequence[NewEntry]) -> None:
        """Journal a batch durably (one fsynced transaction)."""
        now = time.time()
        rows = [
            (
                entry.task_id,
                entry.call_sid,
                entry.kind,
                json.dumps(entry.envelope, separators=(",", ":")),
                now,
            )
            for entry in entries
        ]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO outbox (task_id, call_sid, kind, envelope, created_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def unsent(self, limit: int = 200) -> list[PendingEntry]:
        """The oldest unsent records, in journal order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, task_id, envelope FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [PendingEntry(id=row[0], task_id=row[1], envelope=json.loads(row[2])) for row in rows]

    def mark_sent(self, ids: Iterable[int]) -> None:
        """Record that the broker accepted these records."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE outbox SET sent_at = ? WHERE id = ?", [(now, row_id) for row_id in ids]
            )

    def count_unsent(self) -> int:
        """How many records wait for the broker."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()
        return int(row[0])

    def oldest_unsent_at(self) -> float | None:
        """When (epoch seconds) the oldest unsent record was journaled; None when none waits."""
        with self._lock:
            row = self._db.execute("SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL").fetchone()
        return float(row[0]) if row[0] is not None else None

    def prune_sent(self, older_than_seconds: float) -> int:
        """Delete records the broker took more than `older_than_seconds` ago."""
        cutoff = time.time() - older_than_seconds
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return int(self._db.execute("DELETE FROM outbox WHERE sent_at < ?", (cutoff,)).rowcount)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
