"""Crons: runs on a schedule, on a thread or stateless.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "crons",
        sa.Column("cron_id", sa.String(36), primary_key=True),
        sa.Column("assistant_id", sa.String(36), nullable=False),
        sa.Column("thread_id", sa.String(36), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("on_run_completed", sa.String(16), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("end_time", Ts, nullable=True),
        sa.Column("next_run_date", Ts, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_crons_thread_id", "crons", ["thread_id"])
    op.create_index(
        "ix_crons_due",
        "crons",
        ["next_run_date"],
        postgresql_where=sa.text("enabled AND next_run_date IS NOT NULL"),
        sqlite_where=sa.text("enabled AND next_run_date IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_crons_due", table_name="crons")
    op.drop_index("ix_crons_thread_id", table_name="crons")
    op.drop_table("crons")
