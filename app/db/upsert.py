"""`INSERT ... ON CONFLICT` for the two databases we run on, behind one call.

PostgreSQL and SQLite both support ON CONFLICT with the same SQLAlchemy API, but through different
dialect modules; repositories ask for the statement here and never branch on the dialect themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


class UnsupportedDatabaseError(RuntimeError):
    """The database is neither PostgreSQL nor SQLite."""


def insert_for(session: Session, model: Any) -> Any:
    """An INSERT for `model` that offers `on_conflict_do_nothing` / `on_conflict_do_update`."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql_insert(model)
    if dialect == "sqlite":
        return sqlite_insert(model)
    raise UnsupportedDatabaseError(f"unsupported database dialect {dialect!r}")


def later_of(current: Any, incoming: Any) -> ColumnElement[Any]:
    """The later of two nullable timestamps (SQLite's max() would return NULL if either is NULL)."""
    return case(
        (current.is_(None), incoming),
        (incoming.is_(None), current),
        (incoming > current, incoming),
        else_=current,
    )
