"""A run on a thread that exists goes in with the thread's update in one transaction on the
driver itself (Runs.insert_on_existing_thread: Postgres on asyncpg, a SQLite file on sqlite3),
or not at all when the general path must decide: no such thread, or runs of it in flight and a
strategy other than `enqueue`. What it hands back is the row as stored."""

from __future__ import annotations

import uuid
from typing import Any

from app.store.db import Database
from app.store.runs import Runs
from app.store.threads import Threads
from tests.integration.rows import pending_run, run_through_sqlalchemy, thread_through_sqlalchemy

KWARGS: dict[str, Any] = {"input": {"messages": [{"content": "héllo ✓", "none": None}]}}
_ALL: dict[str, Any] = {"limit": 10, "offset": 0, "status": None}


async def test_a_run_on_a_thread_goes_in_with_the_threads_update(clean_db: Database) -> None:
    store = Runs(clean_db)
    thread_id = str(uuid.uuid4())
    async with clean_db.begin() as conn:
        await Threads.insert(conn, Threads.new_row(thread_id, {"user": "u1"}))

    def build(thread: dict[str, Any], *, claimed: bool = False) -> dict[str, Any]:
        assert thread["thread_id"] == thread_id and thread["metadata"]["user"] == "u1"
        extra = {"status": "running", "lease_owner": "owner-1", "claims": 1} if claimed else {}
        return pending_run(thread_id, kwargs=KWARGS, **extra)

    added = {"graph_id": "g", "assistant_id": "a"}
    first = await store.insert_on_existing_thread(
        thread_id, build, claim=True, enqueue=False, metadata=added
    )
    assert first is not None and first["status"] == "running"
    assert first == await run_through_sqlalchemy(clean_db, first["run_id"])
    thread = await thread_through_sqlalchemy(clean_db, thread_id)
    assert thread is not None and thread["status"] == "busy"
    assert thread["metadata"] == {"user": "u1", **added}

    # A run of the thread is in flight: queued behind it only if the strategy enqueues.
    refused = await store.insert_on_existing_thread(
        thread_id, build, claim=True, enqueue=False, metadata=added
    )
    assert refused is None and len(await store.list_for_thread(thread_id, **_ALL)) == 1
    queued = await store.insert_on_existing_thread(
        thread_id, build, claim=True, enqueue=True, metadata=added
    )
    assert queued is not None and queued["status"] == "pending"
    assert queued == await run_through_sqlalchemy(clean_db, queued["run_id"])

    missing = await store.insert_on_existing_thread(
        str(uuid.uuid4()), build, claim=True, enqueue=True, metadata=added
    )
    assert missing is None
