"""A whole call through the relay's outbox, real Redis, a real worker process and PostgreSQL: it ends with its
transcript, outcome, summary, consent audit and deliveries stored once, even when every task is delivered
twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.calls.events import TranscriptTurn
from app.outbox import OutboxSink
from app.outbox.journal import Journal
from app.outbox.publisher import CeleryPublisher
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
from workers.celery_app import make_celery
from workers.task_names import DELIVER_SUMMARY, POST_CALL, SYNC_CRM

pytestmark = pytest.mark.integration

TABLES = (
    "calls",
    "transcript_turns",
    "tool_invocations",
    "consent_decisions",
    "recordings",
    "call_outcomes",
    "call_summaries",
    "consent_audits",
    "deliveries",
    "failed_tasks",
)


def worker_env(endpoints: Endpoints) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-local-test",
        "OPENAI_BASE_URL": f"{endpoints.url}/v1",
        "CRM_WEBHOOK_URL": f"{endpoints.url}/crm",
        "CRM_WEBHOOK_SECRET": "crm-secret",
        "SUMMARY_WEBHOOK_URL": f"{endpoints.url}/slack",
    }


def all_delivered(pg: Database, sid: str) -> bool:
    done = pg.scalar(
        "SELECT count(*) FROM deliveries WHERE call_sid = :sid AND status = 'done' "
        "AND effect IN ('outcome', 'summary', 'consent_audit', 'crm_sync', 'summary_webhook')",
        sid=sid,
    )
    return bool(done == 5)


def test_a_whole_call_ends_with_transcript_outcome_and_summary_in_postgres(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
) -> None:
    services.worker("flow", concurrency=2, env=worker_env(fresh_endpoints))
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url), direct_liveness=False)
    sink.start()
    sid = call_sid(1)
    events = scripted_call(sid)
    emit_costs = []
    for event in events:
        start = time.perf_counter()
        sink.emit(event)
        emit_costs.append(time.perf_counter() - start)
    ended = time.monotonic()
    try:
        summary_after = wait_until(
            lambda: pg.scalar("SELECT count(*) FROM call_summaries WHERE call_sid = :sid", sid=sid) == 1,
            30,
            "the summary",
        )
        wait_until(lambda: all_delivered(pg, sid), 30, "CRM and staff deliveries")
        delivered_after = time.monotonic() - ended
    finally:
        sink.close()

    turns = [event for event in events if isinstance(event, TranscriptTurn)]
    stored = pg.rows(
        "SELECT seq, speaker, text, interrupted FROM transcript_turns WHERE call_sid = :sid ORDER BY seq",
        sid=sid,
    )
    assert [tuple(row) for row in stored] == [(t.seq, t.speaker, t.text, t.interrupted) for t in turns]
    call = pg.rows(
        "SELECT status, end_reason, from_number, cost_usd FROM calls WHERE call_sid = :sid", sid=sid
    )[0]
    assert (call.status, call.end_reason, call.from_number) == ("ended", "caller_hung_up", "+15551230000")
    assert call.cost_usd > 0
    assert pg.scalar("SELECT outcome FROM call_outcomes WHERE call_sid = :sid", sid=sid) == "booked"
    summary = pg.rows("SELECT text, method FROM call_summaries WHERE call_sid = :sid", sid=sid)[0]
    assert summary.method == "llm" and summary.text == f"Model summary. Caller: Caller line 2 of {sid[-6:]}"
    assert pg.scalar("SELECT verdict FROM consent_audits WHERE call_sid = :sid", sid=sid) == "compliant"
    assert pg.scalar("SELECT count(*) FROM failed_tasks") == 0

    (crm,) = fresh_endpoints.to("/crm")
    signed = crm.headers["X-Signature-Timestamp"].encode() + b"." + crm.body
    assert (
        crm.headers["X-Signature"] == "sha256=" + hmac.new(b"crm-secret", signed, hashlib.sha256).hexdigest()
    )
    assert crm.json()["outcome"] == "booked" and crm.json()["summary"] == summary.text
    (slack,) = fresh_endpoints.to("/slack")
    assert summary.text in slack.json()["text"]

    mean_us, max_us = sum(emit_costs) / len(emit_costs) * 1e6, max(emit_costs) * 1e6
    print(
        f"\nemit(): mean {mean_us:.0f} us, max {max_us:.0f} us "
        f"over {len(emit_costs)} events; CallEnded -> summary stored {summary_after:.2f} s, "
        f"-> CRM + staff webhook delivered {delivered_after:.2f} s"
    )


def test_a_duplicate_delivery_of_every_task_writes_nothing_twice(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
) -> None:
    worker = services.worker("dup", concurrency=2, env=worker_env(fresh_endpoints))
    settings = relay_settings(tmp_path, pg_url, broker.url)
    sink = OutboxSink(settings, direct_liveness=False)
    sink.start()
    sid = call_sid(2)
    for event in scripted_call(sid):
        sink.emit(event)
    try:
        wait_until(lambda: all_delivered(pg, sid), 30, "the first delivery")
    finally:
        sink.close()
    wait_until(broker.idle, 10, "the queue to drain")
    before = {table: pg.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}
    posts_before = len(fresh_endpoints.received)

    # Deliver everything again: every journaled event with its own task id, and each follow-up task.
    journal = Journal(settings.data_dir / "outbox.sqlite3")
    rows = journal._db.execute("SELECT task_id, envelope FROM outbox ORDER BY id").fetchall()
    journal.close()
    publisher = CeleryPublisher(settings)
    for task_id, envelope in rows:
        publisher.publish(task_id, json.loads(envelope))
    publisher.close()
    app = make_celery(settings, role="publisher")
    for duplicate in range(2):
        app.send_task(POST_CALL, kwargs={"call_sid": sid}, task_id=f"post_call:{sid}:again{duplicate}")
        app.send_task(SYNC_CRM, kwargs={"call_sid": sid})
        app.send_task(DELIVER_SUMMARY, kwargs={"call_sid": sid, "channel": "webhook"})
    app.close()
    wait_until(lambda: f"post_call:{sid}:again1] succeeded" in worker.log(), 30, "the duplicates to run")
    wait_until(broker.idle, 30, "the follow-ups of the duplicates to run")
    assert worker.log().count(f"persist_event[call_ended:{sid}] succeeded") == 2

    after = {table: pg.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}
    assert after == before
    assert len(fresh_endpoints.received) == posts_before
    assert len(fresh_endpoints.to("/crm")) == 1 and len(fresh_endpoints.to("/slack")) == 1
    assert len(fresh_endpoints.to("/v1/chat/completions")) == 1
    attempts = dict(pg.rows("SELECT effect, attempts FROM deliveries WHERE call_sid = :sid", sid=sid))
    assert attempts["outcome"] == 1 and attempts["summary"] == 1 and attempts["crm_sync"] == 1


def test_a_task_that_finally_fails_is_recorded_and_listed(
    tmp_path: Path,
    pg: Database,
    pg_url: str,
    broker: RedisServer,
    services: Services,
    fresh_endpoints: Endpoints,
) -> None:
    env = worker_env(fresh_endpoints) | {"CRM_WEBHOOK_URL": f"{fresh_endpoints.url}/refuse/crm"}
    services.worker("refused", concurrency=2, env=env)
    sink = OutboxSink(relay_settings(tmp_path, pg_url, broker.url), direct_liveness=False)
    sink.start()
    sid = call_sid(3)
    for event in scripted_call(sid):
        sink.emit(event)
    try:
        wait_until(lambda: pg.scalar("SELECT count(*) FROM failed_tasks") == 1, 30, "the failed task record")
    finally:
        sink.close()
    failed = pg.rows(
        "SELECT task_name, call_sid, effect, error_type, error_message, attempts FROM failed_tasks"
    )[0]
    assert (failed.task_name, failed.call_sid, failed.effect) == ("voice_agent.sync_crm", sid, "crm_sync")
    assert (failed.error_type, failed.error_message) == (
        "PermanentEffectError",
        "CRM webhook answered HTTP 422",
    )
    assert failed.attempts == 1  # a refusal is not retried
    crm = pg.rows(
        "SELECT status, last_error FROM deliveries WHERE call_sid = :sid AND effect = 'crm_sync'", sid=sid
    )
    assert crm[0].status == "failed" and "422" in crm[0].last_error
    # The rest of the call's post-call work is unaffected.
    wait_until(lambda: all_delivered_except_crm(pg, sid), 30, "the staff webhook")
    listing = subprocess.run(
        [sys.executable, "-m", "workers.cli", "db", "failures"],
        env=services.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert (
        f"voice_agent.sync_crm call={sid} effect=crm_sync attempts=1 PermanentEffectError" in listing.stdout
    )


def all_delivered_except_crm(pg: Database, sid: str) -> bool:
    done = pg.scalar(
        "SELECT count(*) FROM deliveries WHERE call_sid = :sid AND status = 'done' "
        "AND effect IN ('outcome', 'summary', 'consent_audit', 'summary_webhook')",
        sid=sid,
    )
    return bool(done == 4)
