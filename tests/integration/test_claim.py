"""Runs.next against the real databases: one claim per run, oldest first, threads in order,
and the one-running-run-per-thread rule held by the database itself."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.store.db import Database, utcnow
from app.store.runs import Runs
from app.store.tables import runs
from app.store.threads import Threads
from tests.integration.rows import pending_run


async def _add_run(db: Database, thread_id: str, *, create_thread: bool = True) -> str:
    row = pending_run(thread_id)
    async with db.begin() as conn:
        if create_thread and await Threads.get_for_update(conn, thread_id, lock=False) is None:
            await Threads.insert(conn, Threads.new_row(thread_id))
        await Runs.insert(conn, row)
    return row["run_id"]


async def test_claims_oldest_first_and_marks_running(clean_db: Database) -> None:
    store = Runs(clean_db)
    first = await _add_run(clean_db, str(uuid.uuid4()))
    second = await _add_run(clean_db, str(uuid.uuid4()))
    claimed = await store.next("owner-a", 30)
    assert claimed is not None and claimed["run_id"] == first
    assert claimed["status"] == "running" and claimed["attempt"] == 1
    assert claimed["lease_owner"] == "owner-a" and claimed["lease_expires_at"] > utcnow()
    assert (await store.next("owner-b", 30))["run_id"] == second
    assert await store.next("owner-c", 30) is None


async def test_a_thread_runs_one_at_a_time_in_creation_order(clean_db: Database) -> None:
    store = Runs(clean_db)
    thread = str(uuid.uuid4())
    a = await _add_run(clean_db, thread)
    b = await _add_run(clean_db, thread)
    other = await _add_run(clean_db, str(uuid.uuid4()))
    assert (await store.next("w", 30))["run_id"] == a
    # b waits for a; the other thread's run is next.
    assert (await store.next("w", 30))["run_id"] == other
    assert await store.next("w", 30) is None
    async with clean_db.begin() as conn:
        await Runs.finish(conn, a, "w", status="success")
    assert (await store.next("w", 30))["run_id"] == b


async def test_concurrent_claimers_never_share_a_run(clean_db: Database) -> None:
    store = Runs(clean_db)
    created = [await _add_run(clean_db, str(uuid.uuid4())) for _ in range(60)]
    claimed: list[str] = []

    async def claimer(name: str) -> None:
        while (row := await store.next(name, 30)) is not None:
            claimed.append(row["run_id"])

    await asyncio.gather(*(claimer(f"w{i}") for i in range(8)))
    assert sorted(claimed) == sorted(created)


async def test_database_refuses_two_running_runs_on_one_thread(clean_db: Database) -> None:
    thread = str(uuid.uuid4())
    a = await _add_run(clean_db, thread)
    b = await _add_run(clean_db, thread)
    async with clean_db.begin() as conn:
        await conn.execute(update(runs).where(runs.c.run_id == a).values(status="running"))
    with pytest.raises(IntegrityError):
        async with clean_db.begin() as conn:
            await conn.execute(update(runs).where(runs.c.run_id == b).values(status="running"))


async def test_expired_lease_goes_back_to_pending_then_dead(clean_db: Database) -> None:
    store = Runs(clean_db)
    run_id = await _add_run(clean_db, str(uuid.uuid4()))
    for attempt in (1, 2):
        row = await store.next("lost-worker", -1)  # a lease that has already expired
        assert row["run_id"] == run_id and row["attempt"] == attempt
        requeued, dead = await store.sweep_expired(max_attempts=2)
        if attempt == 1:
            assert [r["run_id"] for r in requeued] == [run_id] and dead == []
    assert [r["run_id"] for r in dead] == [run_id]
    final = await store.get(run_id)
    assert final["status"] == "error" and "worker lost 2 times" in final["error"]["message"]


async def test_release_returns_runs_without_charging_an_attempt(clean_db: Database) -> None:
    store = Runs(clean_db)
    run_id = await _add_run(clean_db, str(uuid.uuid4()))
    await store.next("w", 30)
    assert await store.release([run_id], "w") == 1
    row = await store.get(run_id)
    assert row["status"] == "pending" and row["attempt"] == 0
