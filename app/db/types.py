"""Column types that behave the same on PostgreSQL and SQLite.

SQLite has no time zones and no JSONB; these decorators make both databases hand back timezone-aware UTC
datetimes and plain JSON values, so repository code never branches on the dialect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware UTC in; naive UTC text for SQLite."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text, so every stored value must share one naive UTC form.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always aware UTC out."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> TypeEngine[Any]:
    """JSONB on PostgreSQL (indexable, compact), JSON text elsewhere."""
    return JSON().with_variant(JSONB(), "postgresql")


def from_epoch(seconds: float | None) -> datetime | None:
    """An event timestamp (wall-clock seconds, as `app.calls.events` uses) as an aware UTC datetime."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)
