"""Integration fixtures: a fresh PostgreSQL database per session, private Redis servers, real worker and
beat processes, and local stand-ins for every remote endpoint (summary model, CRM, staff webhook).

Nothing here touches the machine's shared Redis on 6379: each session starts its own `redis-server` on a
free port (append-only file, fsync always, like a production broker that must not lose queued tasks).
The PostgreSQL database `voice_agent_test_<random>` is created on 127.0.0.1:5432 and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.models import Base
from app.settings import load_settings
from tests.integration.workers_harness import (
    REPO,
    SETTING_NAMES,
    Database,
    Endpoints,
    RedisServer,
    Services,
    serve_endpoints,
)

# The admin connection that creates (and drops) each test session's database.
PG_ADMIN_DSN = os.environ.get(
    "VOICE_AGENT_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


# --- PostgreSQL -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"voice_agent_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_database(load_settings(database_url=url))
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    """The session database, emptied before each test."""
    engine = make_engine(load_settings(database_url=pg_url))
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield Database(engine, make_session_factory(engine))
    engine.dispose()


# --- Redis ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker(redis_server: RedisServer) -> RedisServer:
    """The session's Redis, emptied (and restarted if a test stopped it) before each test."""
    if not redis_server.running:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server


# --- remote endpoints -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    with serve_endpoints() as stand_in:
        yield stand_in


@pytest.fixture
def fresh_endpoints(endpoints: Endpoints) -> Endpoints:
    endpoints.reset()
    return endpoints


# --- worker and beat processes ----------------------------------------------------------------------------


@pytest.fixture
def services(tmp_path: Path, pg_url: str, broker: RedisServer) -> Iterator[Services]:
    env = {key: value for key, value in os.environ.items() if key.upper() not in SETTING_NAMES}
    env |= {
        "DATABASE_URL": pg_url,
        "REDIS_URL": broker.url,
        "DATA_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
    }
    running = Services(tmp_path, env)
    yield running
    running.stop_all()
