"""Engines and sessions, built per process from settings (never at import time).

PostgreSQL goes through psycopg 3 (`postgresql+psycopg://`); the `postgres://` and `postgresql://` forms
that hosting providers hand out are rewritten to it. Connections are pinged before use and recycled after
10 minutes, because managed Postgres proxies (Fly's among them) drop idle connections, and psycopg's
server-side prepared statements are off so a PgBouncer in transaction mode works.

SQLite (the embedded default) gets its parent directory created, WAL journaling so readers never block the
writer (relay, workers and beat share one file in `voice-agent dev`), foreign keys enforced, and a busy
timeout long enough to ride out another process's write. synchronous=NORMAL is durable against a process
crash in WAL mode, which is the failure this file must survive; the relay's own journal (app/outbox) is the
place that fsyncs every batch.

Both hide bound parameters in error messages: they carry callers' words and numbers, and exceptions end
up in logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.lib.private_files import private_file
from app.settings import Settings

SQLITE_BUSY_TIMEOUT_SECONDS = 15.0


def normalise_database_url(url: str) -> URL:
    """The URL with PostgreSQL forms mapped onto the psycopg 3 driver; other URLs unchanged."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(settings: Settings, *, connect_timeout_seconds: float = 10.0) -> Engine:
    """The engine for `settings.database_url`, configured for the dialect as described above."""
    return make_engine_for_url(settings.database_url, connect_timeout_seconds=connect_timeout_seconds)


def make_engine_for_url(url: str, *, connect_timeout_seconds: float = 10.0) -> Engine:
    """Like `make_engine`, for a bare URL (tests, migrations against another database)."""
    parsed = normalise_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": max(1, round(connect_timeout_seconds)), "prepare_threshold": None}
    return create_engine(parsed, pool_pre_ping=True, pool_recycle=600, connect_args=connect_args, future=True)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        private_file(Path(database).expanduser(), tighten_folder=False)  # callers' data: 0600
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, hide_parameters=True, future=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        finally:
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values readable after commit (effects return rows they wrote)."""
    return sessionmaker(engine, expire_on_commit=False)
