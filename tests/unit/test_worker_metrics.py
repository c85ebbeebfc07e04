"""Worker metrics: Celery's own task signals counted by task (bounded), the sweep's count, and the queue
gauges read from the embedded queue's file."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery
from prometheus_client import CollectorRegistry

from app.settings import load_settings
from workers.celery_app import QUEUE, make_celery
from workers.cli import main as worker_cli
from workers.metrics import DIR_PREFIX, MULTIPROC_ENV, WorkerMetrics, start_worker_metrics, task_label
from workers.queue_metrics import QueueCollector, published_at
from workers.task_names import DELIVER_SUMMARY, PERSIST_EVENT, SWEEP_STUCK_CALLS, SYNC_CRM


class Flaky(Exception):
    pass


@pytest.fixture
def counted() -> Iterator[tuple[WorkerMetrics, CollectorRegistry]]:
    metrics = WorkerMetrics.create()
    registry = CollectorRegistry()
    for metric in (metrics.succeeded, metrics.retried, metrics.failed, metrics.runtime, metrics.calls_swept):
        registry.register(metric)
    metrics.connect()
    yield metrics, registry
    metrics.disconnect()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_task_outcomes_are_counted_by_task_from_celerys_signals(
    counted: tuple[WorkerMetrics, CollectorRegistry],
) -> None:
    _, registry = counted
    app = Celery("metrics-test", set_as_current=False)
    app.conf.task_always_eager = True

    @app.task(name=SYNC_CRM)  # type: ignore[untyped-decorator]
    def fine() -> None:
        time.sleep(0.02)

    @app.task(name=SWEEP_STUCK_CALLS)  # type: ignore[untyped-decorator]
    def sweep() -> int:
        return 3

    @app.task(  # type: ignore[untyped-decorator]
        name=DELIVER_SUMMARY, bind=True, autoretry_for=(Flaky,), max_retries=2, default_retry_delay=0
    )
    def flaky(self: object) -> None:
        raise Flaky("the receiver is down")

    @app.task(name="somebody.elses_task")  # type: ignore[untyped-decorator]
    def foreign() -> None:
        pass

    fine.apply()
    sweep.apply()
    sweep.apply()
    assert flaky.apply().state == "FAILURE"
    foreign.apply()

    assert _value(registry, "voice_agent_tasks_succeeded_total", task=SYNC_CRM) == 1
    assert _value(registry, "voice_agent_tasks_retried_total", task=DELIVER_SUMMARY) == 2
    assert _value(registry, "voice_agent_tasks_failed_total", task=DELIVER_SUMMARY) == 1
    assert _value(registry, "voice_agent_tasks_succeeded_total", task=DELIVER_SUMMARY) == 0
    assert _value(registry, "voice_agent_task_runtime_seconds_count", task=DELIVER_SUMMARY) == 3
    assert _value(registry, "voice_agent_task_runtime_seconds_sum", task=SYNC_CRM) >= 0.02
    assert _value(registry, "voice_agent_calls_swept_total") == 6
    assert _value(registry, "voice_agent_tasks_succeeded_total", task="other") == 1  # bounded label set


def test_task_label_is_one_of_ours_or_other() -> None:
    class Sender:
        name = PERSIST_EVENT

    class Stranger:
        name = "CA0123456789abcdef"

    assert task_label(Sender()) == PERSIST_EVENT
    assert task_label(Stranger()) == "other"
    assert task_label(None) == "other"


def test_disconnected_metrics_count_nothing(counted: tuple[WorkerMetrics, CollectorRegistry]) -> None:
    metrics, registry = counted
    metrics.disconnect()
    app = Celery("metrics-test", set_as_current=False)
    app.conf.task_always_eager = True

    @app.task(name=SYNC_CRM)  # type: ignore[untyped-decorator]
    def fine() -> None:
        pass

    fine.apply()
    assert _value(registry, "voice_agent_tasks_succeeded_total", task=SYNC_CRM) == 0


def test_queue_gauges_read_the_embedded_queue(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, redis_url=None, data_dir=tmp_path)
    collector = QueueCollector(settings, [QUEUE])
    before = {family.name: family.samples[0].value for family in collector.collect()}
    assert before["voice_agent_queue_length"] == 0
    assert before["voice_agent_queue_oldest_task_age_seconds"] == 0

    publisher = make_celery(settings, role="publisher")
    try:
        publisher.send_task(PERSIST_EVENT, kwargs={"envelope": {}}, task_id="first")
        time.sleep(0.2)
        publisher.send_task(PERSIST_EVENT, kwargs={"envelope": {}}, task_id="second")
    finally:
        publisher.close()
    after = {family.name: family.samples[0].value for family in collector.collect()}
    assert after["voice_agent_queue_length"] == 2
    assert 0.2 <= after["voice_agent_queue_oldest_task_age_seconds"] < 5  # the first one's wait
    assert after["voice_agent_broker_up"] == 1


def test_a_message_without_a_readable_stamp_has_no_age() -> None:
    assert published_at(b'{"headers": {"published_at": 12.5}}') == 12.5
    assert published_at(b'{"headers": {}}') is None
    assert published_at(b"not json") is None
    assert published_at(None) is None


def _count_one_success(metrics: WorkerMetrics) -> None:
    metrics.succeeded.labels(task=SYNC_CRM).inc()


def test_forked_children_are_summed_and_dead_workers_files_are_cleared(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"{DIR_PREFIX}{dead.pid}-test"
    stale.mkdir(exist_ok=True)
    settings = load_settings(_env_file=None, redis_url=None, data_dir=tmp_path, metrics_host="127.0.0.1")
    handle = start_worker_metrics(settings, 0)
    try:
        assert not stale.exists()  # its worker is gone
        assert handle.directory.exists() and os.environ[MULTIPROC_ENV] == str(handle.directory)
        fork = multiprocessing.get_context("fork")
        for _ in range(2):  # like the prefork pool's children
            child = fork.Process(target=_count_one_success, args=(handle.metrics,))
            child.start()
            child.join(10)
            assert child.exitcode == 0
        text = httpx.get(f"http://127.0.0.1:{handle.port}/metrics", trust_env=False, timeout=5).text
        assert f'voice_agent_tasks_succeeded_total{{task="{SYNC_CRM}"}} 2.0' in text
        assert 'voice_agent_queue_length{queue="voice_agent"} 0.0' in text
    finally:
        handle.close()
    assert not handle.directory.exists()
    assert MULTIPROC_ENV not in os.environ


def _keep_test_logging(*_args: object, **_kwargs: object) -> None:
    """The commands configure logging to this test's captured stderr, which closes after it: skip that."""


def test_a_worker_refuses_a_taken_metrics_port_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("workers.cli.configure_logging", _keep_test_logging)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("METRICS_HOST", "127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert worker_cli(["worker", "--metrics-port", str(taken.getsockname()[1])]) == 2
    error = capsys.readouterr().err
    assert "cannot serve metrics" in error and "Traceback" not in error
    assert MULTIPROC_ENV not in os.environ  # nothing left switched on in this process


def test_flower_refuses_without_credentials_or_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("workers.flower_command.configure_logging", _keep_test_logging)
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert worker_cli(["flower"]) == 2
    assert "FLOWER_BASIC_AUTH is not set" in capsys.readouterr().err
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:a-long-password")
    assert worker_cli(["flower"]) == 2
    error = capsys.readouterr().err
    assert "REDIS_URL is not set" in error and "a-long-password" not in error
