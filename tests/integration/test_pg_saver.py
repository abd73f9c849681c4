"""The server's Postgres checkpointer saves a task's writes as LangGraph's own saver does (the
same rows, the same conflict rules) without handing the serialization to a thread."""

from __future__ import annotations

import asyncio
import functools
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


def _saves(saver: Any, thread_id: str) -> list[Any]:
    """A step's worth of saves: a checkpoint with a blob, then writes for it."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"token": "plain", "items": {"a": [1, 2, 3]}}
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    saved = {"configurable": {**config["configurable"], "checkpoint_id": checkpoint["id"]}}
    return [
        functools.partial(saver.aput, config, checkpoint, {"step": 0}, {"token": 1, "items": 1}),
        functools.partial(saver.aput_writes, saved, WRITE_SETS[0], "task-1"),
        functools.partial(saver.aput_writes, saved, WRITE_SETS[1], "task-2"),
    ]


async def _stored(saver: Any, thread_id: str) -> list[list[tuple]]:
    """The thread's checkpoints, blobs and writes, without ids and times (which differ)."""
    tables = []
    async with saver._cursor() as cur:
        for sql in (
            "SELECT checkpoint->'channel_values', metadata FROM checkpoints WHERE thread_id = %s",
            "SELECT channel, type, blob FROM checkpoint_blobs WHERE thread_id = %s "
            "ORDER BY channel",
            "SELECT task_id, idx, channel, type, blob FROM checkpoint_writes "
            "WHERE thread_id = %s ORDER BY task_id, idx",
        ):
            await cur.execute(sql, (thread_id,))
            tables.append([tuple(row.values()) for row in await cur.fetchall()])
    return tables


async def test_saves_together_are_stored_as_one_by_one(savers: tuple[Any, Any]) -> None:
    ours, _ = savers
    one_by_one, together = str(uuid.uuid4()), str(uuid.uuid4())
    for save in _saves(ours, one_by_one):
        await save()
    await ours.save_together(_saves(ours, together))
    stored = await _stored(ours, together)
    assert stored == await _stored(ours, one_by_one)
    assert [len(rows) for rows in stored] == [1, 1, 4]  # a checkpoint, a blob, four writes


async def test_a_refused_statement_stores_none_of_the_batch(savers: tuple[Any, Any]) -> None:
    ours, _ = savers
    thread_id = str(uuid.uuid4())

    async def refused() -> None:
        async with ours._cursor() as cur:
            await cur.execute("SELECT 1 / 0")

    with pytest.raises(Exception, match="division by zero"):
        await ours.save_together([*_saves(ours, thread_id), refused])
    assert await _stored(ours, thread_id) == [[], [], []]
    # The connection went back to the pool usable.
    await ours.save_together(_saves(ours, thread_id))
    assert [len(rows) for rows in await _stored(ours, thread_id)] == [1, 1, 4]
