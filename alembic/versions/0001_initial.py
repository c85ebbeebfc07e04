"""Calls, transcript turns, tool invocations, notes, consent, outcomes, summaries, deliveries, failures.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Self-contained on purpose (no imports from app.db): a migration must keep meaning what it meant when it was
written, whatever the models become. Runs on PostgreSQL and SQLite; indexes are created outside batch mode
because they need no table rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _row_id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _call_sid(table: str) -> tuple[sa.Column[str], sa.ForeignKeyConstraint]:
    column = sa.Column("call_sid", sa.String(64), nullable=False)
    foreign_key = sa.ForeignKeyConstraint(
        ["call_sid"], ["calls.call_sid"], name=f"fk_{table}_call_sid_calls", ondelete="CASCADE"
    )
    return column, foreign_key


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("from_number", sa.String(64), nullable=True),
        sa.Column("to_number", sa.String(64), nullable=True),
        sa.Column("caller_state", sa.String(16), nullable=True),
        sa.Column("model", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(32), nullable=True),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        _ts("last_seen_at", nullable=True),
        sa.Column("audio_in_seconds", sa.Float(), nullable=True),
        sa.Column("audio_out_seconds", sa.Float(), nullable=True),
        sa.Column("usage", _json(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=5), nullable=True),
        sa.Column("expected_turns", sa.Integer(), nullable=True),
        sa.Column("expected_tools", sa.Integer(), nullable=True),
        _ts("swept_at", nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("call_sid", name="pk_calls"),
    )
    op.create_index("ix_calls_status_last_seen_at", "calls", ["status", "last_seen_at"])

    op.create_table(
        "call_liveness",
        sa.Column("call_sid", sa.String(64), nullable=False),
        _ts("last_heartbeat_at", nullable=False),
        sa.Column("relay_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("call_sid", name="pk_call_liveness"),
    )

    column, foreign_key = _call_sid("transcript_turns")
    op.create_table(
        "transcript_turns",
        _row_id(),
        column,
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _ts("started_at", nullable=False),
        _ts("ended_at", nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("id", name="pk_transcript_turns"),
        sa.UniqueConstraint("call_sid", "seq", name="uq_transcript_turns_call_sid_seq"),
    )

    column, foreign_key = _call_sid("tool_invocations")
    op.create_table(
        "tool_invocations",
        _row_id(),
        column,
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("arguments", _json(), nullable=False),
        sa.Column("result", _json(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("id", name="pk_tool_invocations"),
        sa.UniqueConstraint("call_sid", "seq", name="uq_tool_invocations_call_sid_seq"),
    )

    column, foreign_key = _call_sid("call_notes")
    op.create_table(
        "call_notes",
        _row_id(),
        column,
        sa.Column("tag", sa.String(32), nullable=False),
        _ts("at", nullable=False),
        sa.Column("detail", _json(), nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("id", name="pk_call_notes"),
        sa.UniqueConstraint("call_sid", "tag", "at", name="uq_call_notes_call_sid_tag_at"),
    )

    column, foreign_key = _call_sid("consent_decisions")
    op.create_table(
        "consent_decisions",
        column,
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("caller_state", sa.String(16), nullable=True),
        sa.Column("notice_required", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("notice_played_at", nullable=True),
        foreign_key,
        sa.PrimaryKeyConstraint("call_sid", name="pk_consent_decisions"),
    )

    column, foreign_key = _call_sid("recordings")
    op.create_table(
        "recordings",
        _row_id(),
        column,
        sa.Column("recording_sid", sa.String(64), nullable=False),
        _ts("started_at", nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("id", name="pk_recordings"),
        sa.UniqueConstraint("recording_sid", name="uq_recordings_recording_sid"),
    )
    op.create_index("ix_recordings_call_sid", "recordings", ["call_sid"])

    column, foreign_key = _call_sid("consent_audits")
    op.create_table(
        "consent_audits",
        column,
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("notice_required", sa.Boolean(), nullable=True),
        sa.Column("recording_count", sa.Integer(), nullable=False),
        _ts("first_recording_at", nullable=True),
        _ts("notice_played_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("audited_at", nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("call_sid", name="pk_consent_audits"),
    )

    column, foreign_key = _call_sid("call_outcomes")
    op.create_table(
        "call_outcomes",
        column,
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        _ts("classified_at", nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("call_sid", name="pk_call_outcomes"),
    )
    op.create_index("ix_call_outcomes_outcome", "call_outcomes", ["outcome"])

    column, foreign_key = _call_sid("call_summaries")
    op.create_table(
        "call_summaries",
        column,
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=True),
        _ts("created_at", nullable=False),
        foreign_key,
        sa.PrimaryKeyConstraint("call_sid", name="pk_call_summaries"),
    )

    column, foreign_key = _call_sid("deliveries")
    op.create_table(
        "deliveries",
        _row_id(),
        column,
        sa.Column("effect", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("completed_at", nullable=True),
        foreign_key,
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("call_sid", "effect", name="uq_deliveries_call_sid_effect"),
    )

    op.create_table(
        "failed_tasks",
        _row_id(),
        sa.Column("task_name", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=True),
        sa.Column("effect", sa.String(32), nullable=True),
        sa.Column("error_type", sa.String(128), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        _ts("failed_at", nullable=False),
        _ts("resolved_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_failed_tasks"),
    )
    op.create_index("ix_failed_tasks_call_sid", "failed_tasks", ["call_sid"])
    op.create_index("ix_failed_tasks_task_id", "failed_tasks", ["task_id"])


def downgrade() -> None:
    for table in (
        "failed_tasks",
        "deliveries",
        "call_summaries",
        "call_outcomes",
        "consent_audits",
        "recordings",
        "consent_decisions",
        "call_notes",
        "tool_invocations",
        "transcript_turns",
        "call_liveness",
        "calls",
    ):
        op.drop_table(table)
