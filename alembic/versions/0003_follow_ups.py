"""Staff follow-ups on calls, and when a caller stopped speaking (the start of a reply's latency).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Self-contained like 0001. The new column is nullable, so SQLite adds it without rebuilding the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("transcript_turns", sa.Column("speech_ended_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "follow_ups",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_sid"], ["calls.call_sid"], name="fk_follow_ups_call_sid_calls", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_follow_ups"),
    )
    op.create_index("ix_follow_ups_call_sid", "follow_ups", ["call_sid"])


def downgrade() -> None:
    op.drop_index("ix_follow_ups_call_sid", table_name="follow_ups")
    op.drop_table("follow_ups")
    with op.batch_alter_table("transcript_turns") as batch:
        batch.drop_column("speech_ended_at")
