"""The one-statement run insert with a remembered assistant (Postgres): it writes the thread
and the run only while the assistant's key still resolves to that assistant, unchanged."""

from __future__ import annotations

import uuid
from typing import Any

from app.store.assistants import Assistants
from app.store.db import Database, utcnow
from app.store.hot import AssistantGuard
from app.store.runs import Runs
from app.store.threads import Threads


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


async def _insert(pg: Database, row: Any, guard: AssistantGuard) -> tuple[Any, bool]:
    """The run inserted (or None), and whether its thread exists afterwards."""
    thread_id, now = str(uuid.uuid4()), utcnow()
    run = {
        "run_id": str(uuid.uuid4()),
        "thread_id": thread_id,
        "assistant_id": row["assistant_id"],
        "created_at": now,
        "updated_at": now,
        "status": "pending",
        "metadata": {},
        "kwargs": {},
        "multitask_strategy": "enqueue",
    }
    inserted = await Runs(pg).insert_with_thread(Threads.new_row(thread_id), run, guard)
    return inserted, await Threads(pg).get(thread_id) is not None


async def test_an_unchanged_assistant_lets_the_run_in(pg: Database) -> None:
    store = Assistants(pg)
    row = await _assistant(store, f"g-{uuid.uuid4().hex}")
    run, thread_made = await _insert(pg, row, _guard(row["assistant_id"], row))
    assert run is not None and run["assistant_id"] == row["assistant_id"]
    assert thread_made
    by_graph, _ = await _insert(pg, row, _guard(row["graph_id"], row))
    assert by_graph is not None


async def test_a_new_version_keeps_the_run_and_its_thread_out(pg: Database) -> None:
    store = Assistants(pg)
    row = await _assistant(store, f"g-{uuid.uuid4().hex}")
    await store.add_version(row["assistant_id"], lambda cur: {**cur, "config": {"tags": ["x"]}})
    run, thread_made = await _insert(pg, row, _guard(row["assistant_id"], row))
    assert run is None and not thread_made


async def test_a_deleted_assistant_keeps_the_run_out(pg: Database) -> None:
    store = Assistants(pg)
    row = await _assistant(store, f"g-{uuid.uuid4().hex}")
    assert await store.delete(row["assistant_id"])
    run, thread_made = await _insert(pg, row, _guard(row["assistant_id"], row))
    assert run is None and not thread_made


async def test_a_graph_id_now_resolving_elsewhere_keeps_the_run_out(pg: Database) -> None:
    """The graph's default assistant appears: the graph id no longer means the oldest one."""
    store = Assistants(pg)
    graph_id, default_id = f"g-{uuid.uuid4().hex}", str(uuid.uuid4())
    oldest = await _assistant(store, graph_id)
    guard = _guard(graph_id, oldest, prefer=default_id)
    assert (await _insert(pg, oldest, guard))[0] is not None
    await _assistant(store, graph_id, default_id)
    run, thread_made = await _insert(pg, oldest, guard)
    assert run is None and not thread_made


async def test_remembered_assistants_are_bounded_and_forgotten() -> None:
    store = Assistants(Database("sqlite+aiosqlite:///:memory:"))
    for i in range(1030):
        store.remember(f"k{i}", {"n": i})
    assert store.remembered("k0") is None
    assert store.remembered("k1029") == {"n": 1029}
    store.forget("k1029")
    assert store.remembered("k1029") is None
