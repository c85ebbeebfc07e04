"""Queue depth and the age of the oldest waiting task, read from the broker when Prometheus scrapes.

Every publisher (the relay's outbox, workers re-publishing, beat) stamps each task message with the time
it was published (`published_at`, a message header set in Celery's `before_task_publish` signal, see
`install_publish_stamp`). At scrape time:
- Redis: `LLEN` of the queue and of kombu's priority sub-queues, and the header of the oldest message
  (kombu pushes on the left and pops from the right, so the oldest is at index -1);
- the embedded queue (`workers/embedded_queue.py`): a count of the rows not yet taken, and the header of
  the lowest id among them.
A task taken by a worker but not yet acknowledged is no longer waiting, and neither is one a worker holds
for its countdown (ETA): neither counts. Several workers export the same queue: use `max`, not `sum`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from celery.signals import before_task_publish
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.logs import get_logger
from app.settings import Settings
from workers.embedded_queue import open_queue_database

log = get_logger(__name__)

PUBLISHED_AT = "published_at"
# kombu's Redis transport keeps priorities 3, 6 and 9 in sub-lists named queue + "\x06\x16" + step.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = ("3", "6", "9")


def stamp_published_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """`before_task_publish` receiver: record when this message went to the broker (epoch seconds)."""
    if headers is not None:
        headers[PUBLISHED_AT] = time.time()


def install_publish_stamp() -> None:
    """Stamp every task this process publishes (idempotent)."""
    before_task_publish.connect(stamp_published_at, weak=False, dispatch_uid="voice_agent.published_at")


def published_at(raw: str | bytes | None) -> float | None:
    """The stamp of one stored message (kombu's JSON envelope), or None if absent or unreadable."""
    if raw is None:
        return None
    try:
        stamp = json.loads(raw).get("headers", {}).get(PUBLISHED_AT)
    except (ValueError, AttributeError):
        return None
    return float(stamp) if isinstance(stamp, int | float) else None


class QueueCollector(Collector):
    """`voice_agent_queue_length`, `voice_agent_queue_oldest_task_age_seconds` and `voice_agent_broker_up`."""

    def __init__(self, settings: Settings, queues: Sequence[str]) -> None:
        from workers.celery_app import embedded_queue_path

        self._queues = tuple(queues)
        self._redis_url = settings.redis_url
        self._embedded_path = Path(embedded_queue_path(settings))
        self._client: redis.Redis[bytes] | None = None
        self._was_up = True

    def collect(self) -> Iterator[Metric]:
        length = GaugeMetricFamily("voice_agent_queue_length", "Tasks waiting in the queue", labels=["queue"])
        age = GaugeMetricFamily(
            "voice_agent_queue_oldest_task_age_seconds",
            "How long the oldest waiting task has waited (0 when none)",
            labels=["queue"],
        )
        now = time.time()
        try:
            for queue in self._queues:
                count, oldest = self._read(queue)
                length.add_metric([queue], count)
                age.add_metric([queue], max(0.0, now - oldest) if oldest is not None else 0.0)
        except Exception as exc:  # a broker that is down must not break the scrape of everything else
            if self._was_up:
                log.warning("queue_metrics_unavailable", error=type(exc).__name__)
            self._was_up = False
            yield GaugeMetricFamily("voice_agent_broker_up", "1 if the broker answered the scrape", value=0)
            return
        self._was_up = True
        yield GaugeMetricFamily("voice_agent_broker_up", "1 if the broker answered the scrape", value=1)
        yield length
        yield age

    def _read(self, queue: str) -> tuple[int, float | None]:
        if self._redis_url:
            return self._read_redis(queue)
        return self._read_embedded(queue)

    def _read_redis(self, queue: str) -> tuple[int, float | None]:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._redis_url or "", socket_connect_timeout=1.0, socket_timeout=1.0
            )
        names = [queue, *(queue + PRIORITY_SEPARATOR + step for step in PRIORITY_STEPS)]
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)
        replies = pipe.execute()
        count = sum(int(n) for n in replies[0::2])
        stamps = [stamp for raw in replies[1::2] if (stamp := published_at(raw)) is not None]
        return count, min(stamps, default=None)

    def _read_embedded(self, queue: str) -> tuple[int, float | None]:
        if not self._embedded_path.exists():
            return 0, None
        connection = open_queue_database(self._embedded_path)
        try:
            waiting = "FROM messages WHERE queue = ? AND delivered_at IS NULL"
            count = int(connection.execute(f"SELECT COUNT(*) {waiting}", (queue,)).fetchone()[0])
            row = connection.execute(f"SELECT payload {waiting} ORDER BY id LIMIT 1", (queue,)).fetchone()
        finally:
            connection.close()
        return count, published_at(row[0]) if row is not None else None
