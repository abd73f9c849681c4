"""The server's Postgres checkpointer saves a task's writes as LangGraph's own saver does (the
same rows, the same conflict rules) without handing the serialization to a thread."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import ERROR, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from app.store.checkpoint import Checkpoints
from app.store.pg_saver import PostgresSaver

WRITE_SETS: list[list[tuple[str, Any]]] = [
    [("messages", {"role": "ai", "content": "one"})],
    [("a", 1), ("b", [1, 2, 3]), ("c", "three")],
    [(ERROR, "ValueError('boom')")],
]


@pytest.fixture
async def savers(own_pg_uri: str, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    checkpoints = Checkpoints(postgres_uri=own_pg_uri, sqlite_path=tmp_path / "x.db", pool_size=3)
    ours = await checkpoints.open()
    await checkpoints.setup()
    library = AsyncPostgresSaver(checkpoints._pool)  # the same tables, the library's code
    try:
        yield ours, library
    finally:
        await checkpoints.close()


async def _checkpoint(saver: Any) -> dict:
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
    return await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})


async def _rows(saver: Any, config: dict) -> list[tuple]:
    async with saver._cursor() as cur:
        await cur.execute(
            "SELECT task_id, task_path, idx, channel, type, blob FROM checkpoint_writes "
            "WHERE thread_id = %s ORDER BY task_id, idx",
            (config["configurable"]["thread_id"],),
        )
        return [tuple(row.values()) for row in await cur.fetchall()]


async def test_the_server_uses_its_own_saver(savers: tuple[Any, Any]) -> None:
    ours, _ = savers
    assert isinstance(ours, PostgresSaver)


@pytest.mark.parametrize("writes", WRITE_SETS, ids=["one", "several", "special"])
async def test_writes_are_stored_as_the_library_stores_them(
    savers: tuple[Any, Any], writes: list[tuple[str, Any]]
) -> None:
    ours, library = savers
    mine, theirs = await _checkpoint(ours), await _checkpoint(library)
    await ours.aput_writes(mine, writes, "task-1", "path")
    await library.aput_writes(theirs, writes, "task-1", "path")
    assert await _rows(ours, mine) == await _rows(library, theirs)
    read = await ours.aget_tuple(mine)
    assert read is not None
    assert read.pending_writes == [("task-1", channel, value) for channel, value in writes]


async def test_a_special_write_replaces_and_a_regular_one_does_not(
    savers: tuple[Any, Any],
) -> None:
    ours, _ = savers
    config = await _checkpoint(ours)
    await ours.aput_writes(config, [("messages", "first")], "task-1")
    await ours.aput_writes(config, [("messages", "second")], "task-1")
    await ours.aput_writes(config, [(ERROR, "first error")], "task-1")
    await ours.aput_writes(config, [(ERROR, "second error")], "task-1")
    read = await ours.aget_tuple(config)
    assert read is not None
    assert sorted(read.pending_writes) == [
        ("task-1", ERROR, "second error"),
        ("task-1", "messages", "first"),
    ]


async def test_writes_are_serialized_without_a_thread(
    savers: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = savers
    config = await _checkpoint(ours)

    async def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("serialized on a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    for writes in WRITE_SETS:
        await ours.aput_writes(config, writes, f"task-{len(writes)}")
    monkeypatch.undo()  # the library's reads do use a thread
    read = await ours.aget_tuple(config)
    assert read is not None
    assert len(read.pending_writes) == sum(len(w) for w in WRITE_SETS)
