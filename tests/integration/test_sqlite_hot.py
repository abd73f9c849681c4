"""The embedded store's run path (store/sqlite_hot.py) writes and reads rows exactly as
SQLAlchemy's statements do: each side reads what the other wrote, JSON nulls, booleans,
timestamps and all, so the rest of the store, which goes through SQLAlchemy, sees no
difference."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.store.assistants import _GET_BY_ID_OR_GRAPH, Assistants
from app.store.assistants import _row as assistant_row
from app.store.db import Database, utcnow
from app.store.runs import Runs
from app.store.threads import Threads
from tests.integration.rows import pending_run, run_through_sqlalchemy, thread_through_sqlalchemy

KWARGS: dict[str, Any] = {
    "input": {"messages": [{"content": "héllo ✓", "n": 3, "x": 1.5, "none": None}]},
    "config": {"configurable": {"graph_id": "g"}},
    "temporary": False,
}


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'runyard.db'}")
    await db.migrate()
    assert db.lite is not None
    yield db
    await db.dispose()


async def test_a_run_written_here_reads_the_samerun_through_sqlalchemy(lite: Database) -> None:
    store = Runs(lite)
    thread_id = str(uuid.uuid4())
    row = pending_run(thread_id, kwargs=KWARGS, metadata={"owner": "ünit"}, priority=2)
    inserted = await store.insert_with_thread(Threads.new_row(thread_id, temporary=True), row)
    read = await run_through_sqlalchemy(lite, row["run_id"])
    assert inserted == read == await store.get(row["run_id"])
    assert read["kwargs"] == KWARGS and read["created_at"].tzinfo is not None
    thread = await thread_through_sqlalchemy(lite, thread_id)
    assert thread is not None and thread["temporary"] is True and thread["values"] is None
    assert await store.get(row["run_id"], thread_id) == read
    assert await store.get(row["run_id"], str(uuid.uuid4())) is None
    assert await store.get(str(uuid.uuid4())) is None


async def test_a_run_written_through_sqlalchemy_is_claimed_and_ended_here(lite: Database) -> None:
    store = Runs(lite)
    thread_id = str(uuid.uuid4())
    async with lite.begin() as conn:
        await Threads.insert(conn, Threads.new_row(thread_id))
        row = await Runs.insert(conn, pending_run(thread_id, kwargs=KWARGS))
    claimed = await store.next("owner-1", 30)
    assert claimed is not None and claimed["run_id"] == row["run_id"]
    assert claimed["status"] == "running" and claimed["attempt"] == 1 and claimed["claims"] == 1
    assert claimed == await run_through_sqlalchemy(lite, row["run_id"])
    assert claimed["lease_expires_at"] > utcnow()
    assert await store.next("owner-1", 30) is None

    values = {"messages": ["fin ✓"], "n": None}
    assert await store.finish_settling_thread(
        claimed,
        "owner-2",  # not the claimer: nothing changes
        status="success",
        error=None,
        output=values,
        thread_status="idle",
        values=values,
        interrupts={},
    ) == (None, True)
    done, busy = await store.finish_settling_thread(
        claimed,
        "owner-1",
        status="success",
        error=None,
        output=values,
        thread_status="interrupted",
        values=values,
        interrupts={"node": [{"value": 1}]},
    )
    assert done is not None and not busy
    assert done == await run_through_sqlalchemy(lite, row["run_id"])
    assert done["output"] == values and done["error"] is None and done["lease_owner"] is None
    thread = await thread_through_sqlalchemy(lite, thread_id)
    assert thread is not None and thread["status"] == "interrupted"
    assert thread["values"] == values and thread["interrupts"] == {"node": [{"value": 1}]}


async def test_a_temporary_thread_goes_with_its_run_unless_another_waits(lite: Database) -> None:
    store = Runs(lite)
    thread_id = str(uuid.uuid4())
    first = await store.insert_with_thread(
        Threads.new_row(thread_id, temporary=True),
        pending_run(thread_id, kwargs={"temporary": True}),
    )
    async with lite.begin() as conn:
        waiting = await Runs.insert(conn, pending_run(thread_id, kwargs={"temporary": True}))
    claimed = await store.next("owner-1", 30)
    assert claimed is not None and claimed["run_id"] == first["run_id"]
    ended = {"status": "success", "error": None, "output": None, "thread_status": "idle"}
    done, busy = await store.finish_settling_thread(
        claimed, "owner-1", **ended, values=None, interrupts={}
    )
    assert (
        done is not None and busy and await thread_through_sqlalchemy(lite, thread_id) is not None
    )
    second = await store.next("owner-1", 30)
    assert second is not None and second["run_id"] == waiting["run_id"]
    done, busy = await store.finish_settling_thread(
        second, "owner-1", **ended, values=None, interrupts={}
    )
    assert (
        done is not None and not busy and await thread_through_sqlalchemy(lite, thread_id) is None
    )


async def test_an_assistant_is_found_by_id_or_graph_asrun_through_sqlalchemy(
    lite: Database,
) -> None:
    store = Assistants(lite)
    for name in ("a", "b"):
        now = utcnow()
        await store.ensure(
            {
                "assistant_id": f"asst-{name}",
                "graph_id": "graph-g",
                "name": name,
                "description": None,
                "config": {"configurable": {"k": name}},
                "context": {},
                "metadata": {"n": None},
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    for key, prefer in (("asst-b", ""), ("graph-g", "asst-b"), ("graph-g", ""), ("none", "")):
        async with lite.read() as conn:
            found = (
                (await conn.execute(_GET_BY_ID_OR_GRAPH, {"key": key, "prefer": prefer}))
                .mappings()
                .first()
            )
        expected = assistant_row(found) if found else None
        assert await store.get(key, prefer=prefer) == expected
