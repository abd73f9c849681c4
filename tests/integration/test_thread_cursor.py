"""Where a new follower of a thread's stream starts, read from one snapshot on both backends."""

from __future__ import annotations

import uuid

from app.store.db import Database
from app.store.runs import Runs
from app.store.threads import Threads
from tests.integration.rows import pending_run


async def _add_run(db: Database, thread_id: str, status: str) -> int:
    async with db.begin() as conn:
        if await Threads.get_for_update(conn, thread_id, lock=False) is None:
            await Threads.insert(conn, Threads.new_row(thread_id))
        await Runs.insert(conn, pending_run(thread_id, status=status))
    runs = await Runs(db).list_for_thread(thread_id, limit=1, offset=0, status=None)
    return runs[0]["seq"]


async def test_a_thread_without_runs_starts_at_zero(clean_db: Database) -> None:
    assert await Runs(clean_db).thread_cursor(str(uuid.uuid4())) == 0


async def test_past_runs_are_skipped(clean_db: Database) -> None:
    thread_id = str(uuid.uuid4())
    await _add_run(clean_db, thread_id, "success")
    newest = await _add_run(clean_db, thread_id, "error")
    await _add_run(clean_db, str(uuid.uuid4()), "pending")  # another thread's
    assert await Runs(clean_db).thread_cursor(thread_id) == newest


async def test_the_oldest_run_in_flight_is_next(clean_db: Database) -> None:
    thread_id = str(uuid.uuid4())
    await _add_run(clean_db, thread_id, "success")
    running = await _add_run(clean_db, thread_id, "running")
    await _add_run(clean_db, thread_id, "pending")
    await _add_run(clean_db, thread_id, "interrupted")
    cursor = await Runs(clean_db).thread_cursor(thread_id)
    assert cursor == running - 1
    nxt = await Runs(clean_db).next_on_thread(thread_id, cursor)
    assert nxt is not None and nxt["seq"] == running
