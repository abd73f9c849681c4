"""A run on an existing thread, in the transaction holding the thread's lock (Postgres): the
in-flight check, the insert and the thread's update as one statement."""

from __future__ import annotations

import uuid
from typing import Any

from app.store.db import Database, utcnow
from app.store.runs import Runs
from app.store.threads import Threads
from tests.integration.rows import pending_run


async def _thread(pg: Database) -> str:
    thread_id = str(uuid.uuid4())
    async with pg.begin() as conn:
        await Threads.insert(conn, Threads.new_row(thread_id, {"user": "u"}))
    return thread_id


def _run(thread_id: str, *, claimed: bool = False) -> dict[str, Any]:
    row = pending_run(
        thread_id,
        metadata={"m": 1},
        kwargs={"input": {"x": 1}},
        priority=0,
        not_before=None,
    )
    if claimed:
        row.update(status="running", attempt=1, claims=1, lease_owner="me", started_at=utcnow())
    return row


async def _insert(pg: Database, thread_id: str, *, claim: bool, enqueue: bool) -> Any:
    queued = _run(thread_id)
    claimed = {**_run(thread_id, claimed=True), "run_id": queued["run_id"]} if claim else None
    async with pg.begin() as conn:
        assert await Threads.get_for_update(conn, thread_id, lock=True) is not None
        return await Runs.insert_on_locked_thread(
            conn, queued, claimed, enqueue=enqueue, thread_metadata={"user": "u", "graph_id": "g"}
        )


async def test_an_idle_thread_takes_the_run_claimed_and_turns_busy(pg: Database) -> None:
    thread_id = await _thread(pg)
    run = await _insert(pg, thread_id, claim=True, enqueue=False)
    assert run["status"] == "running" and run["lease_owner"] == "me" and run["attempt"] == 1
    assert run["kwargs"] == {"input": {"x": 1}} and run["metadata"] == {"m": 1}
    thread = await Threads(pg).get(thread_id)
    assert thread["status"] == "busy" and thread["metadata"] == {"user": "u", "graph_id": "g"}


async def test_a_run_in_flight_queues_the_next_unclaimed_under_enqueue(pg: Database) -> None:
    thread_id = await _thread(pg)
    first = await _insert(pg, thread_id, claim=True, enqueue=True)
    second = await _insert(pg, thread_id, claim=True, enqueue=True)
    assert first["status"] == "running"
    assert second["status"] == "pending" and second["lease_owner"] is None
    assert second["attempt"] == 0 and second["seq"] > first["seq"]


async def test_a_run_in_flight_leaves_other_strategies_to_the_caller(pg: Database) -> None:
    thread_id = await _thread(pg)
    await _insert(pg, thread_id, claim=False, enqueue=False)
    before = await Threads(pg).get(thread_id)
    assert await _insert(pg, thread_id, claim=True, enqueue=False) is None
    assert await _insert(pg, thread_id, claim=False, enqueue=False) is None
    assert len(await Runs(pg).list_for_thread(thread_id, limit=10, offset=0, status=None)) == 1
    assert (await Threads(pg).get(thread_id))["updated_at"] == before["updated_at"]


async def test_without_a_claim_the_run_is_queued_even_on_an_idle_thread(pg: Database) -> None:
    thread_id = await _thread(pg)
    run = await _insert(pg, thread_id, claim=False, enqueue=False)
    assert run["status"] == "pending" and run["claims"] == 0
