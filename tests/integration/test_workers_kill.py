"""Killing a worker in the middle of a task loses nothing.

The task caught mid-flight is the post-call pipeline, held inside the summary model call by a stalled
local endpoint. Two ways a worker dies: the kernel kills the pool process (OOM), or the whole machine goes
(every process SIGKILLed at once, nothing gets to requeue anything).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from app.outbox import OutboxSink
from tests.integration.workers_harness import (
    Database,
    Endpoints,
    RedisServer,
    Services,
    call_sid,
    relay_settings,
    scripted_call,
    wait_until,
)

pytestmark = pytest.mark.integration

LLM_PATH = "/v1/chat/completions"


def llm_env(endpoints: Endpoints) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-local-test", "OPENAI_BASE_URL": f"{endpoints.url}/v1"}


def emit_call(tmp_path: Path, pg_url: str, broker: RedisServer, sid: str) -> int:
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url), direct_liveness=False)
    sink.start()
    events = scripted_call(sid)
    for event in events:
        sink.emit(event)
    assert sink.close(timeout=10)
    return sum(1 for event in events if event.kind == "transcript_turn")


def assert_finished_once(pg: Database, sid: str, turns: int) -> None:
    assert pg.scalar("SELECT count(*) FROM transcript_turns WHERE call_sid = :sid", sid=sid) == turns
    assert pg.scalar("SELECT count(*) FROM call_outcomes WHERE call_sid = :sid", sid=sid) == 1
    assert pg.rows("SELECT method FROM call_summaries WHERE call_sid = :sid", sid=sid)[0].method == "llm"
    assert pg.scalar("SELECT verdict FROM consent_audits WHERE call_sid = :sid", sid=sid) == "compliant"
    attempts = dict(pg.rows("SELECT effect, attempts FROM deliveries WHERE call_sid = :sid", sid=sid))
    assert attempts == {"outcome": 1, "summary": 1, "consent_audit": 1}
    assert pg.scalar("SELECT count(*) FROM failed_tasks") == 0


def summary_stored(pg: Database, sid: str) -> bool:
    return bool(pg.scalar("SELECT count(*) FROM call_summaries WHERE call_sid = :sid", sid=sid) == 1)


def post_call_done(pg: Database, sid: str) -> bool:
    """Outcome, summary and consent audit all settled (the audit is the pipeline's last step)."""
    done = pg.scalar("SELECT count(*) FROM deliveries WHERE call_sid = :sid AND status = 'done'", sid=sid)
    return bool(done == 3)


def test_an_oom_killed_pool_process_has_its_task_redone(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
) -> None:
    worker = services.worker("oom", concurrency=1, env=llm_env(fresh_endpoints))
    fresh_endpoints.stall_next_llm_request(60)
    sid = call_sid(11)
    turns = emit_call(tmp_path, pg_url, broker, sid)
    wait_until(lambda: len(fresh_endpoints.to(LLM_PATH)) == 1, 30, "the summary request")
    (child,) = worker.pool_children()
    os.kill(child, signal.SIGKILL)

    waited = wait_until(lambda: post_call_done(pg, sid), 30, "the redone post-call work")
    assert len(fresh_endpoints.to(LLM_PATH)) == 2
    assert "WorkerLostError" in worker.log()
    assert_finished_once(pg, sid, turns)
    print(f"\npool process SIGKILLed mid-summary: post-call done {waited:.2f} s later by a new pool process")


def test_a_dead_worker_machine_has_its_task_finished_by_another_worker(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
) -> None:
    visibility_timeout = 3.0
    env = llm_env(fresh_endpoints)
    first = services.worker("first", concurrency=1, visibility_timeout=visibility_timeout, env=env)
    fresh_endpoints.stall_next_llm_request(60)
    sid = call_sid(12)
    turns = emit_call(tmp_path, pg_url, broker, sid)
    wait_until(lambda: len(fresh_endpoints.to(LLM_PATH)) == 1, 30, "the summary request")
    first.kill_all()
    killed_at = time.monotonic()
    assert not summary_stored(pg, sid)
    assert not broker.idle()  # the task is parked as unacknowledged in Redis, not gone

    time.sleep(visibility_timeout + 0.5)
    services.worker("second", concurrency=1, visibility_timeout=visibility_timeout, env=env)
    wait_until(lambda: post_call_done(pg, sid), 30, "the second worker to finish the call")
    assert len(fresh_endpoints.to(LLM_PATH)) == 2
    assert_finished_once(pg, sid, turns)
    finished = time.monotonic() - killed_at
    print(
        f"\nworker machine SIGKILLed mid-summary: finished by a second worker {finished:.2f} s later "
        f"(visibility timeout {visibility_timeout:.0f} s in this test, 900 s by default)"
    )
