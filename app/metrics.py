"""Prometheus metrics of one relay process: calls, latency a caller feels, and the outbox's backlog.

One registry per app (no process globals); counts only, never numbers or words. Scrape `GET /metrics`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from app.calls.call import Call
    from app.calls.relay import Relay

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class RelayMetrics:
    """Counters and histograms the relay updates when a call ends, plus gauges read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "voice_agent_calls", "Calls ended, by reason", ["end_reason"], registry=self.registry
        )
        self.greeting = Histogram(
            "voice_agent_greeting_seconds",
            "Stream start to the first agent audio sent to Twilio",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.barge_in = Histogram(
            "voice_agent_barge_in_clear_seconds",
            "speech_started to Twilio clear sent (last barge-in of each call)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tools = Counter("voice_agent_tool_calls", "Tool calls", ["ok"], registry=self.registry)

    def watch(self, relay: Relay, sink: Any) -> None:
        """Expose the relay's live state and the sink's counters as gauges."""
        self.registry.register(_LiveCollector(relay, sink))

    def call_ended(self, call: Call) -> None:
        if not call.attached:
            return
        self.calls.labels(end_reason=call.end_reason or "unknown").inc()
        timings = call.timings
        if timings.stream_started_at is not None and timings.first_audio_sent_at is not None:
            self.greeting.observe(max(0.0, timings.first_audio_sent_at - timings.stream_started_at))
        if timings.last_barge_in_ms is not None:
            self.barge_in.observe(timings.last_barge_in_ms / 1000)
        for entry in call.tool_log:
            self.tools.labels(ok=str(not entry.endswith("(failed)")).lower()).inc()


class _LiveCollector(Collector):
    def __init__(self, relay: Relay, sink: Any) -> None:
        self._relay = relay
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        relay = self._relay
        yield GaugeMetricFamily("voice_agent_live_calls", "Calls with a media stream", value=relay.live_calls)
        preopened = sum(1 for call in relay.calls.values() if not call.attached)
        yield GaugeMetricFamily(
            "voice_agent_preopened_sessions", "Sessions waiting for a stream", value=preopened
        )
        yield GaugeMetricFamily(
            "voice_agent_draining", "1 while draining for shutdown", value=int(relay.draining)
        )
        stats = getattr(self._sink, "stats", None)
        if callable(stats):
            current = stats()
            for name in ("emitted", "sent", "pending", "publish_failures", "journal_failures"):
                value = getattr(current, name, None)
                if isinstance(value, int | float):
                    yield GaugeMetricFamily(f"voice_agent_outbox_{name}", f"Outbox {name}", value=value)
            oldest = getattr(current, "oldest_pending_seconds", 0.0)
            yield GaugeMetricFamily(
                "voice_agent_outbox_oldest_pending_seconds", "Age of the oldest unsent event", value=oldest
            )
