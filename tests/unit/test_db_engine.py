"""The engine factory: URL forms, SQLite pragmas, and the migrations matching the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app.db.engine import make_engine, normalise_database_url
from app.db.migrate import current_revision, downgrade_database, head_revision, upgrade_database
from app.db.models import Base
from app.settings import load_settings


def test_postgres_urls_use_psycopg3() -> None:
    for url in ("postgres://u:p@db:5432/app", "postgresql://u:p@db:5432/app"):
        parsed = normalise_database_url(url)
        assert parsed.drivername == "postgresql+psycopg"
        assert (parsed.host, parsed.database, parsed.username) == ("db", "app", "u")
    assert normalise_database_url("postgresql+psycopg://db/app").drivername == "postgresql+psycopg"
    assert normalise_database_url("sqlite:///./var/x.db").drivername == "sqlite"


def test_sqlite_engine_creates_its_directory_and_sets_wal_and_foreign_keys(tmp_path: Path) -> None:
    db_file = tmp_path / "nested" / "dir" / "app.db"
    engine = make_engine(load_settings(database_url=f"sqlite:///{db_file}"))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert (connection.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 5000
        assert db_file.exists()
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models_and_downgrade_cleanly(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'm.db'}")
    assert current_revision(settings) is None
    upgrade_database(settings)
    assert current_revision(settings) == head_revision()
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        downgrade_database(settings, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(settings)  # and up again, as a deploy after a rollback would
        assert "transcript_turns" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
