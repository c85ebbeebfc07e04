"""A worker's Prometheus metrics: Celery's own task signals counted with prometheus-client.

Counted in the process that runs the task (a prefork child) from Celery's signals (`task_prerun`,
`task_postrun`, `task_success`, `task_retry`, `task_failure`), and added up across the pool's children by
prometheus-client's multiprocess mode: every process writes its values to files in a fresh private
directory (`PROMETHEUS_MULTIPROC_DIR`, made per worker start, removed at exit), and the worker's main
process serves their sum, plus the queue gauges read from the broker at scrape time
(`workers/queue_metrics.py`), on `--metrics-port` (default `WORKER_METRICS_PORT`, 9092).

The stuck-call sweep runs as a task here (beat only schedules it), so the calls it swept are counted here
too, from the sweep task's return value. A sweep count that stops growing also means the beat is down.

Labels are bounded: `task` is one of this app's task names, anything else is `other`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_retry, task_success
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from app.metrics_server import MetricsServer, serve_metrics
from app.settings import Settings
from workers.task_names import (
    COMPLETE_REMOTE_CALL,
    DELIVER_SUMMARY,
    PERSIST_EVENT,
    POST_CALL,
    SWEEP_STUCK_CALLS,
    SYNC_CRM,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TASK_NAMES = frozenset(
    {PERSIST_EVENT, POST_CALL, SYNC_CRM, DELIVER_SUMMARY, COMPLETE_REMOTE_CALL, SWEEP_STUCK_CALLS}
)
RUNTIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0)
SIGNAL_UID = "voice_agent.worker_metrics"
DIR_PREFIX = "voice-agent-worker-metrics-"


@dataclass
class WorkerMetrics:
    """The task counters; `connect()` hooks them to Celery's signals for this process and its children."""

    succeeded: Counter
    retried: Counter
    failed: Counter
    runtime: Histogram
    calls_swept: Counter
    _started: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls) -> WorkerMetrics:
        """New, unregistered metrics (in multiprocess mode the files are the registry)."""
        return cls(
            succeeded=Counter("voice_agent_tasks_succeeded", "Tasks that succeeded", ["task"], registry=None),
            retried=Counter(
                "voice_agent_tasks_retried", "Task runs that asked to retry", ["task"], registry=None
            ),
            failed=Counter(
                "voice_agent_tasks_failed",
                "Tasks that finally failed (see `db failures`)",
                ["task"],
                registry=None,
            ),
            runtime=Histogram(
                "voice_agent_task_runtime_seconds",
                "Task run time, any result",
                ["task"],
                buckets=RUNTIME_BUCKETS,
                registry=None,
            ),
            calls_swept=Counter(
                "voice_agent_calls_swept", "Calls the sweep found abandoned (relay died)", registry=None
            ),
        )

    def connect(self) -> None:
        """Count every task this process (and the pool children it forks) runs."""
        task_prerun.connect(self._on_prerun, weak=False, dispatch_uid=SIGNAL_UID)
        task_postrun.connect(self._on_postrun, weak=False, dispatch_uid=SIGNAL_UID)
        task_success.connect(self._on_success, weak=False, dispatch_uid=SIGNAL_UID)
        task_retry.connect(self._on_retry, weak=False, dispatch_uid=SIGNAL_UID)
        task_failure.connect(self._on_failure, weak=False, dispatch_uid=SIGNAL_UID)

    def disconnect(self) -> None:
        """Stop counting (tests, and the end of `voice-agent worker`)."""
        for signal in (task_prerun, task_postrun, task_success, task_retry, task_failure):
            signal.disconnect(dispatch_uid=SIGNAL_UID)

    def _on_prerun(self, task_id: str | None = None, **_: Any) -> None:
        if task_id is not None:
            self._started[task_id] = time.perf_counter()

    def _on_postrun(self, sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        started = self._started.pop(task_id, None) if task_id is not None else None
        if started is not None:
            self.runtime.labels(task=task_label(sender)).observe(time.perf_counter() - started)

    def _on_success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        name = task_label(sender)
        self.succeeded.labels(task=name).inc()
        if name == SWEEP_STUCK_CALLS and isinstance(result, int) and result > 0:
            self.calls_swept.inc(result)

    def _on_retry(self, sender: Any = None, **_: Any) -> None:
        self.retried.labels(task=task_label(sender)).inc()

    def _on_failure(self, sender: Any = None, **_: Any) -> None:
        self.failed.labels(task=task_label(sender)).inc()


def task_label(sender: Any) -> str:
    """The bounded `task` label for a signal's sender (a Task, or for some signals its request)."""
    name = getattr(sender, "name", None) or getattr(sender, "task", None)
    return name if isinstance(name, str) and name in TASK_NAMES else "other"


@dataclass
class WorkerMetricsHandle:
    """What `start_worker_metrics` started: the listener, the signal hooks and the value files."""

    server: MetricsServer
    metrics: WorkerMetrics
    directory: Path

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        """Stop serving, unhook the signals, remove the value files and leave multiprocess mode."""
        self.server.close()
        self.metrics.disconnect()
        leave_multiprocess_mode()
        shutil.rmtree(self.directory, ignore_errors=True)


def use_multiprocess_dir(directory: Path) -> None:
    """Switch prometheus-client to multiprocess values kept in `directory`, for metrics created from now on
    in this process and the processes it forks. prometheus-client picks its value class when first
    imported, which may already have happened, so pick it again now."""
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # untyped in prometheus-client


def _remove_dead_workers_dirs() -> None:
    """Value directories of workers that died without cleaning up (SIGKILL), found by their pid."""
    for stale in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*-*"):
        pid = stale.name[len(DIR_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            continue


def leave_multiprocess_mode() -> None:
    """Back to in-memory values for metrics created from now on (the worker is stopping)."""
    os.environ.pop(MULTIPROC_ENV, None)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # untyped upstream


def start_worker_metrics(settings: Settings, port: int) -> WorkerMetricsHandle:
    """Before the worker starts: a fresh value directory, the signal hooks, and the listener on `port`.

    Raises `MetricsPortError` if the port cannot be bound (nothing is left behind then)."""
    from workers.celery_app import QUEUE
    from workers.queue_metrics import QueueCollector

    _remove_dead_workers_dirs()
    directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
    use_multiprocess_dir(directory)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]  # untyped upstream
    registry.register(QueueCollector(settings, [QUEUE]))
    try:
        server = serve_metrics(registry, settings.metrics_host, port)
    except Exception:
        leave_multiprocess_mode()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    metrics = WorkerMetrics.create()
    metrics.connect()
    return WorkerMetricsHandle(server, metrics, directory)
