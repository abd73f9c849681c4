"""The whole schema, readable as one file. Migrations in migrations/ mirror it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
Seq = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)

RUN_STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")
TERMINAL_RUN_STATUSES = frozenset({"success", "error", "timeout", "interrupted"})
THREAD_STATUSES = ("idle", "busy", "interrupted", "error")

assistants = Table(
    "assistants",
    metadata,
    Column("assistant_id", String(36), primary_key=True),
    Column("graph_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("description", String, nullable=True),
    Column("config", Json, nullable=False),
    Column("context", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# Every version an assistant has had; `assistants` holds the one in use.
assistant_versions = Table(
    "assistant_versions",
    metadata,
    Column("assistant_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("graph_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", String, nullable=True),
    Column("config", Json, nullable=False),
    Column("context", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("thread_id", String(36), primary_key=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # When a run or a state update last changed its state; null until then (the API answers
    # created_at).
    Column("state_updated_at", Timestamp, nullable=True),
    Column("metadata", Json, nullable=False),
    Column("status", String(16), nullable=False, server_default="idle"),
    Column("values", Json, nullable=True),
    Column("interrupts", Json, nullable=False),
    Column("config", Json, nullable=False),
    Column("error", Json, nullable=True),
    # Stateless runs get a thread that goes away with the run unless asked to keep it.
    Column("temporary", Boolean, nullable=False, server_default=text("false")),
    # {"ttl": minutes, "strategy": "delete"} as the SDK sends it; the sweeper deletes the
    # thread once expires_at has passed (each run on the thread pushes it back).
    Column("ttl", Json, nullable=True),
    Column("expires_at", Timestamp, nullable=True),
    Index(
        "ix_threads_expires_at",
        "expires_at",
        postgresql_where=text("expires_at IS NOT NULL"),
        sqlite_where=text("expires_at IS NOT NULL"),
    ),
)

runs = Table(
    "runs",
    metadata,
    # seq orders runs by creation across processes and machines without trusting clocks.
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False, unique=True),
    Column("thread_id", String(36), nullable=False),
    Column("assistant_id", String(36), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("kwargs", Json, nullable=False),
    Column("multitask_strategy", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", Timestamp, nullable=True),
    Column("cancel_requested", String(16), nullable=True),
    Column("started_at", Timestamp, nullable=True),
    Column("ended_at", Timestamp, nullable=True),
    Column("error", Json, nullable=True),
    Column("output", Json, nullable=True),
    # Not claimable before this time: a retry's backoff, or a delayed run.
    Column("not_before", Timestamp, nullable=True),
    # Times the agent failed and the run was retried (the assistant asked for retries).
    Column("retries", Integer, nullable=False, server_default="0"),
    # Every claim, charged or not: event ids of claim N start above those of claim N - 1.
    Column("claims", Integer, nullable=False, server_default="0"),
    # Higher first; never ahead of an older pending run of the same thread.
    Column("priority", Integer, nullable=False, server_default="0"),
    Index("ix_runs_thread_seq", "thread_id", "seq"),
    # The database, not only the code, allows one running run per thread.
    Index(
        "uq_runs_one_running_per_thread",
        "thread_id",
        unique=True,
        postgresql_where=text("status = 'running'"),
        sqlite_where=text("status = 'running'"),
    ),
    Index(
        "ix_runs_pending",
        text("priority DESC"),
        "seq",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index(
        "ix_runs_running_lease",
        "lease_expires_at",
        postgresql_where=text("status = 'running'"),
        sqlite_where=text("status = 'running'"),
    ),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False, index=True),
)

# Scheduled runs. `next_run_date` is the slot the scheduler fires next (NULL once past
# end_time); claiming a due cron moves it forward in the transaction that holds the row.
crons = Table(
    "crons",
    metadata,
    Column("cron_id", String(36), primary_key=True),
    Column("assistant_id", String(36), nullable=False),
    # NULL: each firing is a stateless run on a thread of its own.
    Column("thread_id", String(36), nullable=True, index=True),
    Column("user_id", String(255), nullable=True),
    Column("schedule", String(255), nullable=False),
    Column("timezone", String(64), nullable=True),
    Column("payload", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("on_run_completed", String(16), nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("end_time", Timestamp, nullable=True),
    Column("next_run_date", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(
        "ix_crons_due",
        "next_run_date",
        postgresql_where=text("enabled AND next_run_date IS NOT NULL"),
        sqlite_where=text("enabled AND next_run_date IS NOT NULL"),
    ),
)
