"""Rows the integration tests put in the stores directly."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from app.store.db import Database, utcnow
from app.store.runs import _GET
from app.store.runs import _row as run_row
from app.store.tables import threads


def pending_run(thread_id: str, **fields: Any) -> dict[str, Any]:
    """A new pending run of `thread_id` with the least a run row needs; `fields` on top."""
    now = utcnow()
    return {
        "run_id": str(uuid.uuid4()),
        "thread_id": thread_id,
        "assistant_id": str(uuid.uuid4()),
        "created_at": now,
        "updated_at": now,
        "status": "pending",
        "metadata": {},
        "kwargs": {},
        "multitask_strategy": "enqueue",
        **fields,
    }


async def run_through_sqlalchemy(db: Database, run_id: str) -> dict[str, Any]:
    """The run as SQLAlchemy's own statement reads it (the store's other paths)."""
    async with db.read() as conn:
        found = (await conn.execute(_GET, {"run_id": run_id})).mappings().one()
    return run_row(found)


async def thread_through_sqlalchemy(db: Database, thread_id: str) -> dict[str, Any] | None:
    async with db.read() as conn:
        query = select(threads).where(threads.c.thread_id == thread_id)
        found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None
