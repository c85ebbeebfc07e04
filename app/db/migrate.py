"""Apply the Alembic migrations from code (`voice-agent db upgrade`, tests, `voice-agent dev`).

The migration scripts live in the top-level `alembic/` folder (next to `alembic.ini`, for developers who run
`alembic` by hand). A checkout or editable install finds it beside the `app` package; an installed copy (the
Docker image) finds it in the working directory. The database URL always comes from settings, never from the
ini file.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.db.engine import make_engine
from app.settings import Settings

_BESIDE_PACKAGE = Path(__file__).resolve().parents[2] / "alembic"
MIGRATIONS_DIR = _BESIDE_PACKAGE if (_BESIDE_PACKAGE / "env.py").exists() else Path.cwd() / "alembic"


def alembic_config(settings: Settings) -> Config:
    """An Alembic config bound to these settings (env.py reads them from `attributes`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest). Safe to run on every start."""
    command.upgrade(alembic_config(settings), revision)


def downgrade_database(settings: Settings, revision: str) -> None:
    """Step the database back to `revision` ("base" drops every table)."""
    command.downgrade(alembic_config(settings), revision)


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at, or None for an empty database."""
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision the code ships."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()
