"""The no-servers mode (`voice-agent dev` without REDIS_URL): relay, worker and SQLite meet in DATA_DIR
through the embedded queue, which keeps Redis's no-loss semantics: a worker killed mid-task has its task
finished by the next worker. Needs neither PostgreSQL nor Redis, so it is not marked `integration`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.outbox import OutboxSink
from app.settings import Settings, load_settings
from tests.integration.workers_harness import (
    REPO,
    SETTING_NAMES,
    Database,
    Endpoints,
    Services,
    call_sid,
    scripted_call,
    wait_until,
)
from workers.embedded_queue import queued_messages


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Settings, Services, Database]]:
    data_dir = tmp_path / "var"
    database_url = f"sqlite:///{data_dir / 'voice_agent.db'}"
    settings = load_settings(database_url=database_url, redis_url=None, data_dir=data_dir)
    upgrade_database(settings)
    env = {key: value for key, value in os.environ.items() if key.upper() not in SETTING_NAMES}
    env |= {"DATABASE_URL": database_url, "DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}
    services = Services(tmp_path, env)
    engine = make_engine(settings)
    yield settings, services, Database(engine, make_session_factory(engine))
    services.stop_all()
    engine.dispose()


def summary_method(db: Database, sid: str) -> str | None:
    rows = db.rows("SELECT method FROM call_summaries WHERE call_sid = :sid", sid=sid)
    return str(rows[0].method) if rows else None


def test_a_call_is_finalised_with_no_servers_at_all(embedded: tuple[Settings, Services, Database]) -> None:
    settings, services, db = embedded
    services.worker("solo", concurrency=2)
    sink = OutboxSink(settings)
    sink.start()
    sid = call_sid(41)
    for event in scripted_call(sid):
        sink.emit(event)
    try:
        audited = "SELECT count(*) FROM consent_audits WHERE call_sid = :sid"
        wait_until(lambda: db.scalar(audited, sid=sid) == 1, 30, "the post-call work")
    finally:
        sink.close()
    assert summary_method(db, sid) == "extractive"
    assert db.scalar("SELECT count(*) FROM transcript_turns WHERE call_sid = :sid", sid=sid) == 6
    assert db.scalar("SELECT outcome FROM call_outcomes WHERE call_sid = :sid", sid=sid) == "booked"
    assert db.scalar("SELECT verdict FROM consent_audits WHERE call_sid = :sid", sid=sid) == "compliant"
    wait_until(
        lambda: queued_messages(settings.data_dir / "queue.sqlite3", "voice_agent") == 0, 10, "an empty queue"
    )


def test_a_killed_worker_loses_nothing_in_the_embedded_queue(
    embedded: tuple[Settings, Services, Database], fresh_endpoints: Endpoints
) -> None:
    settings, services, db = embedded
    llm = {"OPENAI_API_KEY": "sk-local-test", "OPENAI_BASE_URL": f"{fresh_endpoints.url}/v1"}
    first = services.worker("first", concurrency=1, visibility_timeout=2.0, env=llm)
    fresh_endpoints.stall_next_llm_request(60)
    sid = call_sid(42)
    sink = OutboxSink(settings)
    sink.start()
    for event in scripted_call(sid):
        sink.emit(event)
    assert sink.close(timeout=10)
    wait_until(lambda: len(fresh_endpoints.to("/v1/chat/completions")) == 1, 30, "the summary request")
    first.kill_all()
    time.sleep(2.5)
    services.worker("second", concurrency=1, visibility_timeout=2.0, env=llm)
    wait_until(lambda: summary_method(db, sid) == "llm", 30, "the second worker to finish the call")
    assert db.scalar("SELECT count(*) FROM call_outcomes WHERE call_sid = :sid", sid=sid) == 1
    assert db.scalar("SELECT count(*) FROM failed_tasks") == 0
