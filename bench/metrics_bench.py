"""What the metrics cost: ``python -m bench.metrics_bench``.

- hot path: the per-frame check the audio path makes (`CallTimings.awaiting_audio`), one histogram observe
  and one bound counter increment, each in nanoseconds (best of several runs, so a busy shared host shows
  its quiet spells);
- a scrape of the relay's registry with every series populated, and of a worker's multiprocess registry
  with the value files of a pool that has cycled through many children.
Each figure is printed next to its bar (PASS/FAIL).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.calls.timings import CallTimings
from app.metrics import RelayMetrics
from workers.metrics import TASK_NAMES, WorkerMetrics, leave_multiprocess_mode, use_multiprocess_dir

RUNS, LOOPS = 25, 20_000  # many short runs, so some land in a quiet spell on a shared host
# The relay spends ~153 us of CPU per relayed frame (README); what metrics add per frame stays under 1% of it.
MAX_FRAME_CHECK_NS = 1_500.0
# Observes come per greeting, reply, barge-in, tool call or lag probe (a few a second), not per frame.
MAX_OBSERVE_NS = 20_000.0
MAX_RELAY_SCRAPE_MS = 20.0
MAX_WORKER_SCRAPE_MS = 250.0
WORKER_CHILDREN = 40  # e.g. two pool processes recycled 20 times (worker_max_tasks_per_child)


def best_ns(action: Callable[[], object], loops: int = LOOPS) -> float:
    """Best mean time per call over RUNS runs, in ns."""
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter_ns()
        for _ in range(loops):
            action()
        best = min(best, (time.perf_counter_ns() - started) / loops)
    return best


def row(name: str, value: float, unit: str, bar: float) -> None:
    verdict = "PASS" if value <= bar else "FAIL"
    print(f"  {name:<52} {value:>10.1f} {unit:<3} (bar <= {bar:g}) {verdict}")


def hot_path() -> None:
    metrics = RelayMetrics()
    timings = CallTimings(first_audio_sent_at=1.0, awaiting_audio=False)

    def frame_check() -> None:
        if timings.awaiting_audio:
            timings.audio_sent(160, metrics)

    dropped = metrics.dropped["interrupted_audio"]
    print("hot path, per call")
    baseline = best_ns(lambda: None)  # the loop and call overhead the rows below share
    print(f"  (an empty call costs {baseline:.0f} ns here; included in every row)")
    row("per agent frame: the awaiting-audio check", best_ns(frame_check), "ns", MAX_FRAME_CHECK_NS)
    row(
        "histogram observe (greeting, reply, barge-in, lag)",
        best_ns(lambda: metrics.greeting.observe(0.3)),
        "ns",
        MAX_OBSERVE_NS,
    )
    row("bound counter inc (frames dropped)", best_ns(dropped.inc), "ns", MAX_OBSERVE_NS)


def relay_scrape() -> None:
    metrics = RelayMetrics()
    tools = ["lookup_hours", "check_availability", "book_appointment"]
    metrics.bind_labels(tools, ["gpt-realtime-mini", "gpt-realtime"])
    for name in tools:
        metrics.tool_finished(name, ok=True, error_code=None, seconds=0.2)
    for reason in ("caller_hung_up", "agent_hung_up", "transferred", "idle", "capped", "failed"):
        metrics.calls.labels(end_reason=reason).inc()
    size = len(generate_latest(metrics.registry))
    ms = best_ns(lambda: generate_latest(metrics.registry), loops=20) / 1e6
    print(f"relay scrape ({size} bytes)")
    row("generate the relay's exposition", ms, "ms", MAX_RELAY_SCRAPE_MS)


def _child_counts(metrics: WorkerMetrics) -> None:
    for task in TASK_NAMES:
        metrics.succeeded.labels(task=task).inc()
        metrics.runtime.labels(task=task).observe(0.05)
    os._exit(0)


def worker_scrape() -> None:
    directory = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    use_multiprocess_dir(directory)
    try:
        metrics = WorkerMetrics.create()
        for _ in range(WORKER_CHILDREN):
            pid = os.fork()
            if pid == 0:
                _child_counts(metrics)
            os.waitpid(pid, 0)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]  # untyped upstream
        files = len(list(directory.iterdir()))
        ms = best_ns(lambda: generate_latest(registry), loops=2) / 1e6
        print(f"worker scrape ({files} value files from {WORKER_CHILDREN} pool children)")
        row("merge and generate the worker's exposition", ms, "ms", MAX_WORKER_SCRAPE_MS)
    finally:
        leave_multiprocess_mode()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    hot_path()
    relay_scrape()
    worker_scrape()


if __name__ == "__main__":
    main()
