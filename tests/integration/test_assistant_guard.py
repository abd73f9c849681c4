"""The run inserts with a remembered assistant (Postgres): they write the run, and its thread
or the thread's update, only while the assistant's key still resolves to that assistant,
unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.store.assistants import Assistants
from app.store.db import Database, utcnow
from app.store.hot import AssistantChanged, AssistantGuard
from app.store.runs import Runs
from app.store.threads import Threads
from tests.integration.rows import pending_run


async def _assistant(store: Assistants, graph_id: str, assistant_id: str | None = None) -> Any:
    now = utcnow()
    row = {
        "assistant_id": assistant_id or str(uuid.uuid4()),
        "graph_id": graph_id,
        "name": "a",
        "description": None,
        "config": {},
        "context": {},
        "metadata": {},
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    assert await store.create(row)
    return await store.get(row["assistant_id"])


def _guard(key: str, row: Any, prefer: str = "") -> AssistantGuard:
    return AssistantGuard(key, prefer, row["version"], row["updated_at"])


@pytest.fixture(params=["new thread", "existing thread", "existing thread, on the driver"])
def path(request: pytest.FixtureRequest) -> str:
    """The guarded inserts: a stateless run's thread and run in one statement, and a run on a
    thread that exists, after its lock (in a SQLAlchemy transaction, and in one of asyncpg's
    with the lock taken there too)."""
    return request.param


async def _insert(pg: Database, row: Any, guard: AssistantGuard, path: str) -> tuple[Any, bool]:
    """The run inserted (or None when the guard refused it), and whether anything of it was
    written (its thread made, or the existing thread touched)."""
    thread_id = str(uuid.uuid4())
    run = pending_run(thread_id, assistant_id=row["assistant_id"])
    threads = Threads(pg)
    try:
        if path == "new thread":
            inserted = await Runs(pg).insert_with_thread(Threads.new_row(thread_id), run, guard)
            return inserted, await threads.get(thread_id) is not None
        async with pg.begin() as conn:
            await Threads.insert(conn, Threads.new_row(thread_id))
        if path == "existing thread, on the driver":
            inserted = await Runs(pg).insert_on_existing_thread(
                thread_id,
                lambda thread, claimed=False: run,
                claim=False,
                enqueue=True,
                metadata={"t": 1},
                assistant=guard,
            )
            return inserted, (await threads.get(thread_id))["metadata"] == {"t": 1}
        async with pg.begin() as conn:
            assert await Threads.get_for_update(conn, thread_id, lock=True) is not None
            inserted = await Runs.insert_on_locked_thread(
                conn, run, None, enqueue=True, thread_metadata={"t": 1}, assistant=guard
            )
        return inserted, (await threads.get(thread_id))["metadata"] == {"t": 1}
    except AssistantChanged:
        if path == "new thread":
            return None, await threads.get(thread_id) is not None
        written = (await threads.get(thread_id))["metadata"] != {}
        return None, written or await Runs(pg).get(run["run_id"]) is not None


async def test_an_unchanged_assistant_lets_the_run_in(pg: Database, path: str) -> None:
    store = Assistants(pg)
    row = await _assistant(store, f"g-{uuid.uuid4().hex}")
    run, thread_made = await _insert(pg, row, _guard(row["assistant_id"], row), path)
    assert run is not None and run["assistant_id"] == row["assistant_id"]
    assert thread_made
    by_graph, _ = await _insert(pg, row, _guard(row["graph_id"], row), path)
    assert by_graph is not None


async def test_a_new_version_keeps_the_run_and_its_thread_out(pg: Database, path: str) -> None:
    store = Assistants(pg)
    row = await _assistant(store, f"g-{uuid.uuid4().hex}")
    await store.add_version(row["assistant_id"], lambda cur: {**cur, "config": {"tags": ["x"]}})
    run, thread_made = await _insert(pg, row, _guard(row["assistant_id"], row), path)
    assert run is None and not thread_made


async def test_a_deleted_assistant_keeps_the_run_out(pg: Database, path: str) -> None:
    store = Assistants(pg)
    row = await _assistant(store, f"g-{uuid.uuid4().hex}")
    assert await store.delete(row["assistant_id"])
    run, thread_made = await _insert(pg, row, _guard(row["assistant_id"], row), path)
    assert run is None and not thread_made


async def test_a_graph_id_now_resolving_elsewhere_keeps_the_run_out(
    pg: Database, path: str
) -> None:
    """The graph's default assistant appears: the graph id no longer means the oldest one."""
    store = Assistants(pg)
    graph_id, default_id = f"g-{uuid.uuid4().hex}", str(uuid.uuid4())
    oldest = await _assistant(store, graph_id)
    guard = _guard(graph_id, oldest, prefer=default_id)
    assert (await _insert(pg, oldest, guard, path))[0] is not None
    await _assistant(store, graph_id, default_id)
    run, thread_made = await _insert(pg, oldest, guard, path)
    assert run is None and not thread_made


async def test_remembered_assistants_are_bounded_and_forgotten() -> None:
    store = Assistants(Database("sqlite+aiosqlite:///:memory:"))
    for i in range(1030):
        store.remember(f"k{i}", {"n": i})
    assert store.remembered("k0") is None
    assert store.remembered("k1029") == {"n": 1029}
    store.forget("k1029")
    assert store.remembered("k1029") is None
