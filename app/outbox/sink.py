"""`OutboxSink`: the relay's `CallEventSink`, which never blocks the event loop and never loses an event.

    relay loop --emit()--> in-memory queue --writer thread--> journal (SQLite, fsynced)
                                                  dispatcher thread --> broker (Redis / embedded queue)

- `emit` converts the event to its record and puts it on an unbounded in-memory queue: a few microseconds,
  no I/O, no lock shared with I/O, and it never raises (failures are counted instead).
- The writer thread appends whatever has queued up to the journal in one fsynced transaction. What is lost
  on a hard crash is only what sat in memory for those few milliseconds.
- The dispatcher thread publishes unsent records in journal order as `persist_event` tasks and marks them
  sent once the broker took them. While the broker is down or slow it backs off (0.2 s doubling to 2 s,
  with jitter) and tries again; after a restart it sends whatever was never confirmed. Re-publishing is
  harmless: task ids are deterministic per (call, kind, seq) and the workers store by natural key.
- The writer also stamps each `CallEnded` with how many transcript turns and tool calls it journaled for
  the call, so the post-call work can wait for stragglers, and keeps each live call's newest heartbeat for
  the `LivenessWriter`, which proves live calls alive to the sweeper even while the broker is down.
- The transcript is checkpointed by the relay emitting each turn as it completes (and heartbeats every
  `heartbeat_seconds`), so a relay crash loses at most the turn in progress.

`start()` launches the threads; `close(timeout)` journals everything emitted so far and gives the dispatcher
until the deadline to publish it; what remains unsent stays in the journal for the next start.
"""

from __future__ import annotations

import os
import queue
import random
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.calls.events import CallEvent, event_to_record
from app.logs import get_logger
from app.outbox.journal import Journal, NewEntry, PendingEntry
from app.outbox.liveness import LivenessWriter
from app.outbox.publisher import CeleryPublisher, Publisher
from app.settings import Settings

log = get_logger(__name__)

_STOP = object()
WRITE_BATCH = 500
DISPATCH_BATCH = 200
MARK_SENT_EVERY = 50
PRUNE_SENT_AFTER_SECONDS = 3600.0
COUNTED_KINDS = ("transcript_turn", "tool_invocation")


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counters for /metrics: totals since start, and what is waiting now."""

    emitted: int
    journaled: int
    sent: int
    pending: int
    oldest_pending_seconds: float
    publish_failures: int
    journal_failures: int
    emit_failures: int
    dropped_after_close: int
    broker_available: bool


def task_id_for(record: dict[str, Any]) -> str:
    """A task id that is the same every time this record is published: kind, call and natural key."""
    kind, call_sid = record["kind"], record["call_sid"]
    if kind == "transcript_turn":
        key = f"{record['seq']}@{record['ended_at']}"  # a re-emitted (checkpointed) turn is a new version
    elif kind == "tool_invocation":
        key = str(record["seq"])
    elif kind == "call_heartbeat":
        key = str(record["at"])
    elif kind == "call_note":
        key = f"{record['tag']}@{record['at']}"
    elif kind == "recording_started":
        key = str(record["recording_sid"])
    elif kind in {"call_started", "call_ended"} and int(record.get("segment", 1)) > 1:
        key = f"segment{record['segment']}"
    elif kind == "consent_notice_attempt":
        key = str(record["attempt"])
    elif kind in {"call_status", "recording_status"}:
        key = f"{record['status']}@{record['at']}"
    else:
        key = ""
    return f"{kind}:{call_sid}:{key}" if key else f"{kind}:{call_sid}"


class OutboxSink:
    """The durable, non-blocking `CallEventSink` (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        journal_path: Path | None = None,
        direct_liveness: bool = True,
        relay_id: str | None = None,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 2.0,
    ) -> None:
        self._settings = settings
        self._publisher = publisher or CeleryPublisher(settings)
        self._journal_path = journal_path or settings.data_dir / "outbox.sqlite3"
        self._relay_id = relay_id or f"{socket.gethostname()}:{os.getpid()}"
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._journal: Journal | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._stop_dispatch = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="outbox-dispatcher", daemon=True)
        self._live_lock = threading.Lock()
        self._live: dict[str, float] = {}
        self._seqs: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self._liveness = (
            LivenessWriter(settings, self.live_calls, self._relay_id) if direct_liveness else None
        )
        self._started = False
        self._closed = False
        self._emitted = 0
        self._journaled = 0
        self._sent = 0
        self._publish_failures = 0
        self._journal_failures = 0
        self._emit_failures = 0
        self._unjournalable = 0
        self._dropped_after_close = 0
        self._unsent_in_journal = 0
        self._oldest_unsent_at: float | None = None
        self._broker_available = True

    # --- the relay's side ------------------------------------------------------------------------------
    def emit(self, event: CallEvent) -> None:
        """Queue the event for the journal; returns at once and never raises."""
        try:
            if self._closed:
                self._dropped_after_close += 1
                return
            self._queue.put(event_to_record(event))
            self._emitted += 1
        except Exception:
            self._emit_failures += 1

    def live_calls(self) -> dict[str, float]:
        """Calls started and not ended, with their newest heartbeat time (for the liveness writer)."""
        with self._live_lock:
            return dict(self._live)

    def stats(self) -> OutboxStats:
        """Current counters; cheap (no I/O), safe to call from the event loop."""
        return OutboxStats(
            emitted=self._emitted,
            journaled=self._journaled,
            sent=self._sent,
            pending=self._queue.qsize() + self._unsent_in_journal,
            oldest_pending_seconds=self._oldest_pending_seconds(),
            publish_failures=self._publish_failures,
            journal_failures=self._journal_failures,
            emit_failures=self._emit_failures,
            dropped_after_close=self._dropped_after_close,
            broker_available=self._broker_available,
        )

    # --- lifecycle -------------------------------------------------------------------------------------
    def _oldest_pending_seconds(self) -> float:
        # Aged at read time, so a dispatcher stuck on a dead broker still shows the wait growing.
        oldest = self._oldest_unsent_at
        return max(0.0, time.time() - oldest) if oldest is not None else 0.0

    def start(self) -> None:
        """Open the journal and start the threads; records left unsent by a previous run go out first."""
        if self._started:
            return
        self._started = True
        self._journal = Journal(self._journal_path)
        self._unsent_in_journal = self._journal.count_unsent()
        if self._unsent_in_journal:
            log.info("outbox_resending", records=self._unsent_in_journal)
        self._writer.start()
        self._dispatcher.start()
        if self._liveness is not None:
            self._liveness.start()

    def flush(self, timeout: float) -> bool:
        """Wait until everything emitted so far is published; False if the deadline passed first."""
        deadline = time.monotonic() + timeout
        target = self._emitted
        while time.monotonic() < deadline:
            handled = self._journaled + self._unjournalable
            if handled >= target and self._queue.empty() and self._unsent_in_journal == 0:
                return True
            self._wake.set()
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Journal everything emitted, publish until `timeout`, stop. True if nothing is left unsent."""
        if self._closed:
            return self._unsent_in_journal == 0
        self._closed = True
        deadline = time.monotonic() + timeout
        if not self._started:
            self.start()
        self._closing.set()
        self._queue.put(_STOP)
        self._writer.join(max(0.0, deadline - time.monotonic()))
        self._wake.set()
        while self._unsent_in_journal and time.monotonic() < deadline and self._dispatcher.is_alive():
            time.sleep(0.02)
        self._stop_dispatch.set()
        self._wake.set()
        self._dispatcher.join(max(0.1, deadline - time.monotonic()))
        if self._liveness is not None:
            self._liveness.stop(timeout=1.0)
        self._publisher.close()
        everything_sent = self._unsent_in_journal == 0 and self._queue.empty()
        if not everything_sent:
            log.warning("outbox_closed_with_unsent", records=self._unsent_in_journal + self._queue.qsize())
        if self._journal is not None and not self._writer.is_alive() and not self._dispatcher.is_alive():
            self._journal.close()
        return everything_sent

    # --- writer thread ---------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            try:
                batch = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in batch)
            entries = []
            for record in batch:
                if record is _STOP:
                    continue
                try:
                    entries.append(self._entry(record))
                except (KeyError, TypeError, ValueError):
                    self._emit_failures += 1
                    self._unjournalable += 1
                    log.error("outbox_bad_record", kind=str(record.get("kind")))
            if entries and self._append(entries):
                self._journaled += len(entries)
                self._unsent_in_journal += len(entries)
                self._wake.set()

    def _append(self, entries: list[NewEntry]) -> bool:
        assert self._journal is not None
        while True:
            try:
                journaled_at = time.time()
                self._journal.append(entries)
                if self._oldest_unsent_at is None:
                    # Aged by stats() at once, even while the dispatcher hangs on a dead broker and cannot
                    # recount; its next recount replaces it with what the journal holds.
                    self._oldest_unsent_at = journaled_at
                return True
            except Exception as exc:
                self._journal_failures += 1
                log.error("outbox_journal_failed", error=type(exc).__name__, records=len(entries))
                if self._closing.is_set() and self._stop_dispatch.is_set():
                    return False
                time.sleep(0.5)

    def _entry(self, record: dict[str, Any]) -> NewEntry:
        kind, call_sid = record["kind"], record["call_sid"]
        meta: dict[str, Any] = {"relay_id": self._relay_id, "journaled_at": time.time()}
        if kind in COUNTED_KINDS:
            self._seqs[call_sid][kind].add(int(record["seq"]))
        elif kind == "call_started":
            with self._live_lock:
                self._live.setdefault(call_sid, float(record["started_at"]))
        elif kind == "call_heartbeat":
            with self._live_lock:
                if call_sid in self._live:  # a heartbeat racing past CallEnded must not revive the call
                    self._live[call_sid] = max(self._live[call_sid], float(record["at"]))
        elif kind == "call_ended":
            seen = self._seqs.pop(call_sid, {})
            meta["expected"] = {counted: len(seen.get(counted, ())) for counted in COUNTED_KINDS}
            with self._live_lock:
                self._live.pop(call_sid, None)
        envelope = {"record": record, "meta": meta}
        return NewEntry(task_id=task_id_for(record), call_sid=call_sid, kind=kind, envelope=envelope)

    # --- dispatcher thread -----------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        assert self._journal is not None
        delay = self._retry_initial
        last_prune = 0.0
        while not self._stop_dispatch.is_set():
            try:
                batch = self._journal.unsent(DISPATCH_BATCH)
            except Exception as exc:
                log.error("outbox_read_failed", error=type(exc).__name__)
                self._stop_dispatch.wait(1.0)
                continue
            if not batch:
                self._refresh_counts()
                if time.monotonic() - last_prune > 60:
                    last_prune = time.monotonic()
                    self._prune()
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            if self._publish(batch):
                delay = self._retry_initial
            else:
                self._stop_dispatch.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._retry_max)
            self._refresh_counts()

    def _publish(self, batch: list[PendingEntry]) -> bool:
        """Publish in order until the first failure; True if the whole batch went out."""
        assert self._journal is not None
        sent: list[int] = []
        ok = True
        for entry in batch:
            if self._stop_dispatch.is_set():
                break
            try:
                self._publisher.publish(entry.task_id, entry.envelope)
            except Exception as exc:
                self._publish_failures += 1
                if self._broker_available:
                    log.warning("outbox_broker_unavailable", error=type(exc).__name__)
                self._broker_available = False
                ok = False
                break
            if not self._broker_available:
                log.info("outbox_broker_back", failures=self._publish_failures)
                self._broker_available = True
            sent.append(entry.id)
            if len(sent) >= MARK_SENT_EVERY:
                self._mark_sent(sent)
                sent = []
        self._mark_sent(sent)
        return ok

    def _mark_sent(self, ids: list[int]) -> None:
        if not ids:
            return
        assert self._journal is not None
        try:
            self._journal.mark_sent(ids)
        except Exception as exc:  # they will be published again: harmless, the workers are idempotent
            log.error("outbox_mark_sent_failed", error=type(exc).__name__)
            return
        self._sent += len(ids)

    def _refresh_counts(self) -> None:
        assert self._journal is not None
        try:
            self._unsent_in_journal = self._journal.count_unsent()
            self._oldest_unsent_at = self._journal.oldest_unsent_at()
        except Exception as exc:
            log.error("outbox_count_failed", error=type(exc).__name__)

    def _prune(self) -> None:
        assert self._journal is not None
        try:
            self._journal.prune_sent(PRUNE_SENT_AFTER_SECONDS)
        except Exception as exc:
            log.error("outbox_prune_failed", error=type(exc).__name__)
