"""The relay's gauges read at scrape time (live calls, the outbox's backlog) and the event-loop lag probe.

Gauges are computed when Prometheus scrapes, from counters the relay and the outbox keep anyway, so the hot
path pays nothing for them. The lag probe is one small task: it asks the loop to wake it after a fixed
interval and records how late it woke. Anything that blocks the loop (a sync call, a CPU-heavy frame)
shows up there first, before callers hear it as choppy audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from app.calls.relay import Relay
    from app.outbox.sink import OutboxStats

LAG_PROBE_SECONDS = 0.25

# The families LiveCollector yields (the outbox ones only with an outbox sink; counters without `_total`).
LIVE_FAMILIES = (
    "voice_agent_live_calls",
    "voice_agent_preopened_sessions",
    "voice_agent_draining",
    "voice_agent_outbox_pending",
    "voice_agent_outbox_oldest_pending_seconds",
    "voice_agent_outbox_broker_available",
    "voice_agent_outbox_emitted",
    "voice_agent_outbox_sent",
    "voice_agent_outbox_publish_failures",
    "voice_agent_outbox_journal_failures",
)


@runtime_checkable
class _HasStats(Protocol):
    def stats(self) -> OutboxStats: ...


class LiveCollector(Collector):
    """Live calls, sessions waiting for a stream, draining, and (with the outbox) its backlog."""

    def __init__(self, relay: Relay, sink: object) -> None:
        self._relay = relay
        self._outbox = sink if isinstance(sink, _HasStats) else None  # the outbox; a MemorySink has no stats

    def collect(self) -> Iterator[Metric]:
        relay = self._relay
        # Scrapes run on the metrics thread while the loop adds and removes calls: iterate over a snapshot
        # (list() of a dict view copies it in one step under the GIL).
        calls = list(relay.calls.values())
        attached = sum(1 for call in calls if call.attached)
        yield GaugeMetricFamily("voice_agent_live_calls", "Calls with a media stream", value=attached)
        preopened = len(calls) - attached
        yield GaugeMetricFamily(
            "voice_agent_preopened_sessions", "Model sessions waiting for their stream", value=preopened
        )
        yield GaugeMetricFamily(
            "voice_agent_draining", "1 while draining for shutdown", value=int(relay.draining)
        )
        if self._outbox is None:
            return
        stats = self._outbox.stats()
        yield GaugeMetricFamily(
            "voice_agent_outbox_pending", "Call events not yet handed to the broker", value=stats.pending
        )
        yield GaugeMetricFamily(
            "voice_agent_outbox_oldest_pending_seconds",
            "Age of the oldest call event not yet handed to the broker",
            value=stats.oldest_pending_seconds,
        )
        yield GaugeMetricFamily(
            "voice_agent_outbox_broker_available",
            "1 while the last publish to the broker succeeded",
            value=int(stats.broker_available),
        )
        # Totals the outbox keeps since the process started: counters, read rather than incremented here.
        for name, value, what in (
            ("emitted", stats.emitted, "Call events emitted"),
            ("sent", stats.sent, "Call events handed to the broker"),
            ("publish_failures", stats.publish_failures, "Failed publishes to the broker"),
            ("journal_failures", stats.journal_failures, "Failed journal writes"),
        ):
            yield CounterMetricFamily(f"voice_agent_outbox_{name}", what, value=value)


async def watch_event_loop(lag: Histogram, interval: float = LAG_PROBE_SECONDS) -> None:
    """Forever: sleep `interval` and observe how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    while True:
        asked_at = loop.time()
        await asyncio.sleep(interval)
        lag.observe(max(0.0, loop.time() - asked_at - interval))
