"""Alembic environment: the URL comes from settings (passed in by `upgrade_database`, else loaded)."""

from __future__ import annotations

from alembic import context

from app.db.engine import make_engine
from app.db.models import Base
from app.settings import Settings, load_settings


def _settings() -> Settings:
    given = context.config.attributes.get("settings")
    return given if isinstance(given, Settings) else load_settings()


def run_migrations_online() -> None:
    """Run the migrations on a live connection; SQLite needs batch mode to alter tables."""
    engine = make_engine(_settings())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
