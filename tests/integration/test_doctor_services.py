"""`voice-agent doctor` against a real PostgreSQL database and a real Redis."""

from __future__ import annotations

import psycopg
import pytest

from app.doctor.checks import check_broker, check_database
from app.settings import load_settings
from tests.integration.conftest import PG_ADMIN_DSN
from tests.integration.workers_harness import RedisServer

pytestmark = pytest.mark.integration


def test_a_migrated_postgres_and_a_live_redis_pass(pg_url: str, broker: RedisServer) -> None:
    settings = load_settings(_env_file=None, database_url=pg_url, redis_url=broker.url)

    database = check_database(settings, 3.0)
    redis = check_broker(settings, 3.0)

    assert database.verdict == "ok" and "(head)" in database.detail
    assert redis.verdict == "ok" and "PING" in redis.detail


def test_an_empty_postgres_database_fails_as_not_migrated(pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[1] + "_empty"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = pg_url.rsplit("/", 1)[0] + "/" + name
        result = check_database(load_settings(_env_file=None, database_url=url), 3.0)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert result.verdict == "FAIL" and "no revision" in result.detail


def test_a_stopped_redis_fails_the_broker_check(broker: RedisServer) -> None:
    settings = load_settings(_env_file=None, redis_url=broker.url)
    broker.stop()

    result = check_broker(settings, 1.0)

    assert result.verdict == "FAIL" and "did not answer PING" in result.detail
