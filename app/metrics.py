"""Prometheus metrics of one relay process: what a caller feels, what the model and tools do, what it costs.

One registry per app (no process globals), served on its own port (`METRICS_PORT`, see
`app/metrics_server.py`), never on the public listener. The hot path only stamps a `perf_counter` and
observes a histogram or bumps a counter child bound here in advance; scrape-time gauges (live calls, the
outbox's backlog, event-loop lag) live in `app/metrics_live.py`.

Every label set is bounded: end reasons are cut to their vocabulary word, tools are the registry's names
(anything else is `unknown`), models are the two configured ones (else `other`). No call sid, number or
words ever become a label.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.calls.model_events import FATAL_ERROR_CODES
from app.calls.model_runner import FATAL_HTTP_STATUSES
from app.db.pricing import estimate_cost_usd

if TYPE_CHECKING:
    from app.calls.call import Call
    from app.calls.events import CallEnded
    from app.calls.relay import Relay

# Seconds a caller waits: the greeting and each reply's first audio.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# The relay's own reaction (speech_started -> clear): well under a millisecond when healthy.
REACTION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
TOOL_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
COST_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

DROP_REASONS = ("oversized", "malformed", "inbound_overflow", "interrupted_audio")
TOOL_RESULTS = ("ok", "error", "timeout")
# Why a model session was given up: the refusal codes and HTTP statuses the model runner treats as fatal.
MODEL_FAILURE_REASONS = FATAL_ERROR_CODES | {f"http_{status}" for status in FATAL_HTTP_STATUSES}


class RelayMetrics:
    """Counters and histograms the relay updates as things happen, plus the gauges of `watch`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._tool_names: frozenset[str] = frozenset()
        self._models: frozenset[str] = frozenset()
        self.calls = Counter("voice_agent_calls", "Calls ended, by reason", ["end_reason"], registry=registry)
        self.greeting = Histogram(
            "voice_agent_greeting_seconds",
            "Stream start to the first greeting frame sent to Twilio",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.reply_first_audio = Histogram(
            "voice_agent_reply_first_audio_seconds",
            "Caller speech stopped to the first agent audio frame sent, per reply",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.barge_in = Histogram(
            "voice_agent_barge_in_clear_seconds",
            "speech_started to Twilio clear sent (the relay's own reaction to a barge-in)",
            buckets=REACTION_BUCKETS,
            registry=registry,
        )
        self.tool_calls = Counter(
            "voice_agent_tool_calls", "Tool calls by tool and result", ["tool", "result"], registry=registry
        )
        self.tool_seconds = Histogram(
            "voice_agent_tool_seconds", "Tool latency", ["tool"], buckets=TOOL_BUCKETS, registry=registry
        )
        self.model_reconnects = Counter(
            "voice_agent_model_reconnects", "Realtime sockets lost mid-call and reopened", registry=registry
        )
        self.model_failures = Counter(
            "voice_agent_model_failures",
            "Calls whose model session was given up (refused, or reconnects exhausted)",
            ["reason"],
            registry=registry,
        )
        frames_dropped = Counter(
            "voice_agent_frames_dropped", "Frames not relayed, by reason", ["reason"], registry=registry
        )
        self.dropped = {reason: frames_dropped.labels(reason=reason) for reason in DROP_REASONS}
        self.event_loop_lag = Histogram(
            "voice_agent_event_loop_lag_seconds",
            "How late the event loop ran a timer (a blocked loop delays every call's audio)",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "voice_agent_model_cost_dollars",
            "Estimated model cost of ended calls (USD), by model",
            ["model"],
            registry=registry,
        )
        self.cost_per_call = Histogram(
            "voice_agent_call_cost_dollars",
            "Estimated model cost per call (USD)",
            buckets=COST_BUCKETS,
            registry=registry,
        )

    def watch(self, relay: Relay, sink: object) -> None:
        """Bind the label sets to this relay's tools and models, expose its live state as gauges, and start
        the event-loop lag probe (owned by the relay's tasks, cancelled at shutdown). Call on the loop."""
        from app.metrics_live import LiveCollector, watch_event_loop

        settings = relay.settings
        self.bind_labels(relay.tools.names(), (settings.realtime_model, settings.realtime_model_hard))
        self.registry.register(LiveCollector(relay, sink))
        relay.tasks.spawn(watch_event_loop(self.event_loop_lag), "event-loop-lag")

    def bind_labels(self, tools: Iterable[str], models: Iterable[str]) -> None:
        """The bounded label values: these tool names (others count as `unknown`) and models (`other`)."""
        self._tool_names = frozenset(tools)
        self._models = frozenset(models)
        for name in self._tool_names:  # series exist at 0, so rate() and alerts see them from the start
            self.tool_seconds.labels(tool=name)
            for result in TOOL_RESULTS:
                self.tool_calls.labels(tool=name, result=result)

    def tool_finished(self, name: str, *, ok: bool, error_code: str | None, seconds: float) -> None:
        """One business tool call ended; `error_code` is the structured error's code, if any."""
        tool = name if name in self._tool_names else "unknown"
        result = "ok" if ok else ("timeout" if error_code == "timeout" else "error")
        self.tool_calls.labels(tool=tool, result=result).inc()
        self.tool_seconds.labels(tool=tool).observe(seconds)

    def model_failed(self, why: str) -> None:
        """A call's model session was given up for `why` (a refusal code or `reconnect_failed:<code>`)."""
        if why in MODEL_FAILURE_REASONS:
            reason = why
        elif why.startswith("reconnect_failed"):
            reason = "reconnects_exhausted"
        else:
            reason = "other"
        self.model_failures.labels(reason=reason).inc()

    def call_cost(self, model: str, ended: CallEnded) -> None:
        """Add a finished call's estimated cost (from its usage totals and audio seconds)."""
        dollars = float(
            estimate_cost_usd(model, ended.audio_in_seconds, ended.audio_out_seconds, ended.usage)
        )
        self.cost.labels(model=model if model in self._models else "other").inc(dollars)
        self.cost_per_call.observe(dollars)

    def call_ended(self, call: Call) -> None:
        """Count a call that had a media stream, by its end reason's vocabulary word."""
        if call.attached:
            reason = (call.end_reason or "unknown").split(":", 1)[0]
            self.calls.labels(end_reason=reason).inc()


def metric_families(registry: CollectorRegistry) -> set[str]:
    """The metric family names a registry exposes (counters without `_total`), e.g. to check a dashboard
    against the code."""
    return {family.name for family in registry.collect()}
