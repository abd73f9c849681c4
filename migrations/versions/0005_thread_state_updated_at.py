"""Threads: when their state last changed (state_updated_at), apart from updated_at.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null until a run or a state update changes the thread's state: the API answers its
    # creation time then, so existing threads need no backfill.
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("state_updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("state_updated_at")
