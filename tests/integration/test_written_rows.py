"""What the run path's writes hand back is the row as stored. The statements that insert and
finalize a run (Postgres's, and the embedded store's own in store/sqlite_hot.py) read back only
the columns the database decides: the JSON ones (a run's kwargs and metadata) are the caller's
own values, so the row the caller gets must equal the one a later read returns."""

from __future__ import annotations

import uuid
from typing import Any

from app.store.db import Database
from app.store.runs import Runs
from app.store.threads import Threads
from tests.integration.rows import pending_run

# Nested, unicode, numbers of both kinds, an empty list and a null: JSON's whole range.
KWARGS: dict[str, Any] = {
    "input": {"messages": [{"role": "user", "content": "héllo ✓", "n": 3, "x": 1.5}]},
    "config": {"configurable": {"graph_id": "g"}, "metadata": {"tags": [], "none": None}},
    "temporary": False,
}


def _claimed(thread_id: str) -> dict[str, Any]:
    return pending_run(
        thread_id,
        kwargs=KWARGS,
        metadata={"owner": "ünit", "depth": 2},
        status="running",
        attempt=1,
        claims=1,
        lease_owner="owner-1",
    )


async def test_an_inserted_run_is_handed_back_as_stored(clean_db: Database) -> None:
    store = Runs(clean_db)
    thread_id = str(uuid.uuid4())
    inserted = await store.insert_with_thread(Threads.new_row(thread_id), _claimed(thread_id))
    assert inserted == await store.get(inserted["run_id"])
    assert inserted["kwargs"] == KWARGS and inserted["seq"] > 0


async def test_a_finished_run_is_handed_back_as_stored(clean_db: Database) -> None:
    store = Runs(clean_db)
    thread_id = str(uuid.uuid4())
    run = await store.insert_with_thread(Threads.new_row(thread_id), _claimed(thread_id))
    output = {"messages": [{"role": "ai", "content": "fin ✓", "score": 0.25}], "n": 7}
    for status, error in (("success", None), ("error", {"error": "E", "message": "bad ✗"})):
        if status == "error":  # a second run of the thread, to end the other way
            run = await store.insert_with_thread(
                Threads.new_row(thread_id := str(uuid.uuid4())), _claimed(thread_id)
            )
        done, busy = await store.finish_settling_thread(
            run,
            "owner-1",
            status=status,
            error=error,
            output=output,
            thread_status="idle",
            values=output,
            interrupts={},
        )
        assert done is not None and not busy
        assert done == await store.get(run["run_id"])
        assert done["status"] == status and done["ended_at"] is not None
        assert done["output"] == output and done["error"] == error
