"""Retention and `db forget` on SQLite (the same cases run on PostgreSQL in tests/integration)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.settings import Settings, load_settings
from app.sim.twilio_rest import SimulatedTwilioRest
from app.twilio.rest import TwilioRequests, TwilioRest
from tests import retention_cases as cases

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-token"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(load_settings(_env_file=None, database_url=url))
    return url


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(load_settings(_env_file=None, database_url=database_url))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def twilio() -> Iterator[tuple[SimulatedTwilioRest, TwilioRest]]:
    with (
        SimulatedTwilioRest(ACCOUNT, TOKEN) as sim,
        TwilioRest(TwilioRequests(ACCOUNT, TOKEN, sim.base_url)) as rest,
    ):
        yield sim, rest


def test_purge_removes_only_calls_past_retention(
    sessions: sessionmaker[Session], twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    cases.check_purge_removes_only_calls_past_retention(sessions, *twilio)


def test_a_recording_twilio_cannot_delete_keeps_its_call_for_the_next_run(
    sessions: sessionmaker[Session], twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    cases.check_a_recording_twilio_cannot_delete_keeps_its_call_for_the_next_run(sessions, *twilio)


def test_forget_removes_every_call_of_one_caller_and_nothing_else(
    sessions: sessionmaker[Session], twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    cases.check_forget_removes_every_call_of_one_caller_and_nothing_else(sessions, *twilio)


def forget_in_a_process(
    database_url: str, sim: SimulatedTwilioRest, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """`voice-agent db forget --caller CALLER` as an operator runs it, against this database and Twilio."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env |= {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(workdir / "var"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_API_BASE_URL": sim.base_url,
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "forget", "--caller", cases.CALLER],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_forget_says_what_it_removed_without_the_number(
    database_url: str,
    sessions: sessionmaker[Session],
    twilio: tuple[SimulatedTwilioRest, TwilioRest],
    tmp_path: Path,
) -> None:
    sim, _ = twilio
    recording = cases.store_call(sessions, sim, cases.sid(1), cases.CALLER, cases.NOW)
    done = forget_in_a_process(database_url, sim, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "removed 1 calls of that caller:" in done.stdout
    assert "  transcript_turns: 2" in done.stdout and "  recordings_deleted_at_twilio: 1" in done.stdout
    output = done.stdout + done.stderr
    assert cases.CALLER not in output and cases.CALLER.lstrip("+") not in output
    assert recording not in sim.recordings
    assert cases.rows_per_table(sessions)["calls"] == 0


def test_the_beat_schedules_the_retention_purge() -> None:
    from celery import Celery

    from workers.beat import configure_beat
    from workers.task_names import PURGE_EXPIRED_CALLS

    app = Celery("retention-test")
    configure_beat(app, load_settings(_env_file=None))
    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert entries[PURGE_EXPIRED_CALLS]["schedule"] <= 3600


def test_db_forget_says_when_twilio_kept_a_recording_and_fails(
    database_url: str,
    sessions: sessionmaker[Session],
    twilio: tuple[SimulatedTwilioRest, TwilioRest],
    tmp_path: Path,
) -> None:
    sim, _ = twilio
    recording = cases.store_call(sessions, sim, cases.sid(1), cases.CALLER, cases.NOW)
    sim.set_failure(503, times=1)
    done = forget_in_a_process(database_url, sim, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "removed 0 calls" in done.stdout and "run this again later" in done.stdout
    assert recording in sim.recordings and cases.rows_per_table(sessions)["calls"] == 1


def test_every_table_holding_a_call_is_purged_with_it() -> None:
    from app.db.models import Base
    from workers.effects.retention import _CALL_TABLES

    purged = {model.__tablename__ for model in _CALL_TABLES}
    with_calls = {table.name for table in Base.metadata.sorted_tables if "call_sid" in table.c}
    assert with_calls - purged == set()
