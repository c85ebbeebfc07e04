"""Ops can watch it: during a simulated call processed by a real worker, the relay's and the worker's
metrics listeners (scraped over HTTP, as Prometheus would) show the call, its tools, its cost and the
worker's tasks; the queue gauges read the real broker; Flower runs only behind basic auth."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.outbox import OutboxSink
from app.settings import load_settings
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import speak_and_hear_reply
from tests.integration.workers_harness import (
    Database,
    RedisServer,
    ServiceProcess,
    Services,
    free_port,
    relay_settings,
    wait_until,
)
from workers.celery_app import QUEUE, make_celery
from workers.queue_metrics import QueueCollector
from workers.task_names import PERSIST_EVENT, POST_CALL

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=5, trust_env=False)
    response.raise_for_status()
    return response.text


def _next_weekday_ten() -> str:
    day = dt.date.today() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return f"{day.isoformat()}T10:00:00-05:00"


async def test_relay_and_worker_metrics_move_during_a_simulated_call(
    tmp_path: Path, pg: Database, pg_url: str, broker: RedisServer, services: Services
) -> None:
    worker_url = f"http://127.0.0.1:{(worker_port := free_port())}/metrics"
    services.worker("metrics", concurrency=2, metrics_port=worker_port)
    before = parse(await asyncio.to_thread(scrape, worker_url))
    assert value(before, "voice_agent_tasks_succeeded_total", task=PERSIST_EVENT) == 0
    assert value(before, "voice_agent_broker_up") == 1

    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url))
    sink.start()
    script = [
        SimTurn(
            hears="I'd like to book a cleaning",
            say="Let me book that.",
            tool="book_appointment",
            arguments={"name": "Sam Lee", "service": "cleaning", "start": _next_weekday_ten()},
        ),
        SimTurn(say="You are booked. See you then."),
    ]
    try:
        async with local_stack(sink=sink, first_audio_delay=0.05, script=script, metrics_port=0) as stack:
            assert stack.metrics_url is not None
            async with stack.caller(from_number="+15557654321", caller_state="NY") as caller:
                await caller.dial()
                await caller.connect()
                await caller.wait_agent_audio(timeout=10)  # the greeting reached the caller
                await caller.wait_agent_silent(quiet=0.3, timeout=10)
                during = parse(await asyncio.to_thread(scrape, stack.metrics_url))
                await speak_and_hear_reply(caller)
                await caller.wait_agent_silent(quiet=0.6, timeout=15)
            sid = caller.call_sid

            def call_counted() -> bool:
                relay = parse(scrape(stack.metrics_url or ""))
                return value(relay, "voice_agent_calls_total", end_reason="caller_hung_up") == 1

            await asyncio.to_thread(wait_until, call_counted, 10, "the relay to count the ended call")
            relay_text = await asyncio.to_thread(scrape, stack.metrics_url)
        await asyncio.to_thread(
            wait_until,
            lambda: pg.scalar("SELECT count(*) FROM call_summaries WHERE call_sid = :sid", sid=sid) == 1,
            30,
            "the summary",
        )
    finally:
        sink.close()

    # The relay: greeting and reply latency, the tool by result, cost, loop lag, the outbox's traffic.
    assert value(during, "voice_agent_live_calls") == 1
    assert value(during, "voice_agent_greeting_seconds_count") == 1
    relay = parse(relay_text)
    assert value(relay, "voice_agent_greeting_seconds_count") == 1
    assert value(relay, "voice_agent_reply_first_audio_seconds_count") >= 1
    assert value(relay, "voice_agent_tool_calls_total", tool="book_appointment", result="ok") == 1
    assert value(relay, "voice_agent_tool_calls_total", tool="book_appointment", result="timeout") == 0
    assert value(relay, "voice_agent_tool_seconds_count", tool="book_appointment") == 1
    assert value(relay, "voice_agent_model_cost_dollars_total", model="gpt-realtime-mini") > 0
    assert value(relay, "voice_agent_call_cost_dollars_count") == 1
    assert value(relay, "voice_agent_event_loop_lag_seconds_count") > 0
    assert value(relay, "voice_agent_outbox_sent_total") >= value(during, "voice_agent_outbox_sent_total") > 0
    assert value(relay, "voice_agent_live_calls") == 0
    assert "5557654321" not in relay_text and sid not in relay_text

    # The worker: every event persisted, the post-call pipeline run, runtimes observed, the queue drained.
    turns = pg.scalar("SELECT count(*) FROM transcript_turns WHERE call_sid = :s", s=sid)

    def worker_caught_up() -> bool:
        worker = parse(scrape(worker_url))
        return (
            value(worker, "voice_agent_tasks_succeeded_total", task=POST_CALL) >= 1
            and value(worker, "voice_agent_queue_length", queue=QUEUE) == 0
        )

    await asyncio.to_thread(wait_until, worker_caught_up, 30, "the worker to run the post-call task")
    worker_text = await asyncio.to_thread(scrape, worker_url)
    worker = parse(worker_text)
    persisted = value(worker, "voice_agent_tasks_succeeded_total", task=PERSIST_EVENT)
    assert persisted >= turns + 2  # at least the turns, the start and the end
    assert value(worker, "voice_agent_task_runtime_seconds_count", task=PERSIST_EVENT) > 0
    assert value(worker, "voice_agent_tasks_failed_total", task=PERSIST_EVENT) == 0
    assert value(worker, "voice_agent_broker_up") == 1
    assert "5557654321" not in worker_text and sid not in worker_text


def test_queue_gauges_read_depth_and_oldest_age_from_redis(tmp_path: Path, broker: RedisServer) -> None:
    settings = load_settings(_env_file=None, redis_url=broker.url, data_dir=tmp_path)
    publisher = make_celery(settings, role="publisher")
    try:
        for n in range(3):
            publisher.send_task(PERSIST_EVENT, kwargs={"envelope": {}}, task_id=f"waiting-{n}", retry=False)
    finally:
        publisher.close()
    waited_from = time.time()
    time.sleep(0.3)
    collector = QueueCollector(settings, [QUEUE])
    samples = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in collector.collect()
        for sample in family.samples
    }
    assert samples[("voice_agent_queue_length", (QUEUE,))] == 3
    assert (
        0.3
        <= samples[("voice_agent_queue_oldest_task_age_seconds", (QUEUE,))]
        < time.time() - waited_from + 1
    )
    assert samples[("voice_agent_broker_up", ())] == 1

    broker.stop()
    down = {family.name: family for family in collector.collect()}
    assert down["voice_agent_broker_up"].samples[0].value == 0
    assert "voice_agent_queue_length" not in down  # no made-up zero while the broker cannot be read


@pytest.fixture
def flower_env(services: Services) -> dict[str, str]:
    return services.env | {"FLOWER_PORT": str(free_port()), "FLOWER_ADDRESS": "127.0.0.1"}


@contextlib.contextmanager
def running_flower(env: dict[str, str], workdir: Path, name: str) -> Iterator[ServiceProcess]:
    process = ServiceProcess(["flower"], env, workdir, workdir / f"{name}.log")
    try:
        yield process
    finally:
        process.stop(timeout=5)


def test_flower_refuses_to_start_without_basic_auth(tmp_path: Path, flower_env: dict[str, str]) -> None:
    for credentials in (None, "ops:short"):
        env = dict(flower_env)
        env.pop("FLOWER_BASIC_AUTH", None)
        if credentials is not None:
            env["FLOWER_BASIC_AUTH"] = credentials
        with running_flower(env, tmp_path, f"flower-refused-{credentials}") as process:
            assert process.proc.wait(30) == 2
            output = process.log()
            assert "FLOWER_BASIC_AUTH" in output and "Traceback" not in output
            assert "ops:short" not in output  # the refusal never repeats the secret


def test_flower_answers_only_with_its_credentials(tmp_path: Path, flower_env: dict[str, str]) -> None:
    env = flower_env | {"FLOWER_BASIC_AUTH": "ops:correct-horse-battery"}
    url = f"http://127.0.0.1:{env['FLOWER_PORT']}/"
    with running_flower(env, tmp_path, "flower") as process:

        def answering() -> bool:
            assert process.proc.poll() is None, process.log()[-2000:]
            try:
                httpx.get(url, timeout=1, trust_env=False)
            except httpx.TransportError:
                return False
            return True

        wait_until(answering, 30, "Flower to listen")
        anonymous = httpx.get(url, timeout=5, trust_env=False)
        assert anonymous.status_code == 401
        wrong = httpx.get(url, timeout=5, trust_env=False, auth=("ops", "not-the-password"))
        assert wrong.status_code == 401
        token = base64.b64encode(b"ops:correct-horse-battery").decode()
        signed_in = httpx.get(url, timeout=5, trust_env=False, headers={"Authorization": f"Basic {token}"})
        assert signed_in.status_code == 200
        assert "correct-horse-battery" not in process.log()
