"""Run priority (high-priority work jumps the queue, never ahead of its own thread's older
runs); every version of every assistant; thread time-to-live.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
    op.drop_index("ix_runs_pending", table_name="runs")
    op.create_index(
        "ix_runs_pending",
        "runs",
        [sa.text("priority DESC"), "seq"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "assistant_versions",
        sa.Column("assistant_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("graph_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String, nullable=True),
        sa.Column("config", Json, nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    # Versions of the assistants that already exist.
    op.execute(
        "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description,"
        " config, context, metadata, created_at) SELECT assistant_id, version, graph_id, name,"
        " description, config, context, metadata, updated_at FROM assistants"
    )
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("ttl", Json, nullable=True))
        batch.add_column(sa.Column("expires_at", Ts, nullable=True))
    op.create_index(
        "ix_threads_expires_at",
        "threads",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
        sqlite_where=sa.text("expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_threads_expires_at", table_name="threads")
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("ttl")
    op.drop_table("assistant_versions")
    op.drop_index("ix_runs_pending", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("priority")
    op.create_index(
        "ix_runs_pending",
        "runs",
        ["seq"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
