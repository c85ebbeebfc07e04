"""One record per phone call across its segments: segments, transfer attempts, messages, notice attempts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

A call that is transferred and comes back has several streams (segments); `call_segments` keeps each one's
model, times, end reason, audio and cost, and `calls` holds their totals. `transfer_attempts` keeps each
hand-off's result, `call_messages` what `take_message` recorded, `consent_notice_attempts` every attempt
at the recording notice. New columns on `calls` (Twilio's final status, cost by part, staff alert time),
`recordings` (status, URL, duration from the RecordingStatusCallback) and `consent_audits`. Self-contained
like 0001; added columns are nullable, so no table rebuild is needed on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _row_id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _ts(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _call_sid(table: str) -> tuple[sa.Column[str], sa.ForeignKeyConstraint]:
    column = sa.Column("call_sid", sa.String(64), nullable=False)
    foreign_key = sa.ForeignKeyConstraint(
        ["call_sid"], ["calls.call_sid"], name=f"fk_{table}_call_sid_calls", ondelete="CASCADE"
    )
    return column, foreign_key


def _child_table(name: str, key: str, *columns: sa.Column[Any]) -> None:
    column, foreign_key = _call_sid(name)
    op.create_table(
        name,
        _row_id(),
        column,
        *columns,
        foreign_key,
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.UniqueConstraint("call_sid", key, name=f"uq_{name}_call_sid_{key}"),
    )


def upgrade() -> None:
    _child_table(
        "call_segments",
        "segment",
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(64), nullable=True),
        _ts("started_at"),
        _ts("ended_at"),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("audio_in_seconds", sa.Float(), nullable=True),
        sa.Column("audio_out_seconds", sa.Float(), nullable=True),
        sa.Column("usage", _json(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(12, 5), nullable=True),
        sa.Column("expected_turns", sa.Integer(), nullable=True),
        sa.Column("expected_tools", sa.Integer(), nullable=True),
    )
    _child_table(
        "transfer_attempts",
        "segment",
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        _ts("started_at"),
        sa.Column("result", sa.String(16), nullable=True),
        _ts("result_at"),
    )
    _child_table(
        "call_messages",
        "at",
        _ts("at", nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("caller_name", sa.String(128), nullable=True),
        sa.Column("callback_number", sa.String(64), nullable=True),
    )
    _child_table(
        "consent_notice_attempts",
        "attempt",
        sa.Column("attempt", sa.Integer(), nullable=False),
        _ts("at", nullable=False),
        sa.Column("heard", sa.Boolean(), nullable=False),
        sa.Column("said", sa.Text(), nullable=False),
        sa.Column("why_not", sa.String(64), nullable=True),
    )
    op.add_column("calls", sa.Column("segment_count", sa.Integer(), nullable=True))
    op.add_column("calls", sa.Column("twilio_status", sa.String(16), nullable=True))
    op.add_column("calls", _ts("twilio_status_at"))
    op.add_column("calls", sa.Column("cost_breakdown", _json(), nullable=True))
    op.add_column("calls", _ts("flagged_at"))
    op.add_column("recordings", sa.Column("status", sa.String(16), nullable=True))
    op.add_column("recordings", sa.Column("url", sa.Text(), nullable=True))
    op.add_column("recordings", sa.Column("duration_seconds", sa.Float(), nullable=True))
    op.add_column("consent_audits", sa.Column("notice_attempts", sa.Integer(), nullable=True))
    op.add_column("consent_audits", sa.Column("notice_said", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_audits") as batch:
        batch.drop_column("notice_said")
        batch.drop_column("notice_attempts")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("duration_seconds")
        batch.drop_column("url")
        batch.drop_column("status")
    with op.batch_alter_table("calls") as batch:
        for name in ("flagged_at", "cost_breakdown", "twilio_status_at", "twilio_status", "segment_count"):
            batch.drop_column(name)
    for table in ("consent_notice_attempts", "call_messages", "transfer_attempts", "call_segments"):
        op.drop_table(table)
