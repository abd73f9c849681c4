"""The server's Postgres checkpointer saves a task's writes as LangGraph's own saver does (the
same rows, the same conflict rules) without handing the serialization to a thread."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
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
    read = await ours.aget_tuple(config)  # and unpacked where they are read
    assert read is not None
    assert len(read.pending_writes) == sum(len(w) for w in WRITE_SETS)
    assert [t.pending_writes async for t in ours.alist(config)] == [read.pending_writes]


async def test_checkpoints_are_read_as_the_library_reads_them(savers: tuple[Any, Any]) -> None:
    ours, library = savers
    thread_id = str(uuid.uuid4())
    for save in _saves(ours, thread_id):  # a checkpoint with a blob, then writes
        await save()
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"token": "second", "items": {"b": 2}}
    first = await ours.aget_tuple(config)
    assert first is not None
    # A second checkpoint, with the first as its parent.
    latest = await ours.aput(first.config, checkpoint, {"step": 1}, {"token": 2, "items": 2})
    await ours.aput_writes(latest, [(ERROR, "boom"), ("messages", "m")], "task-3")
    assert await ours.aget_tuple(config) == await library.aget_tuple(config)
    history = [t async for t in ours.alist(config)]
    assert history == [t async for t in library.alist(config)]
    assert [len(t.pending_writes) for t in history] == [2, 4]
    assert history[0].parent_config is not None and history[1].parent_config is None


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


async def _stored_both_ways(saver: Any, saves_for: Callable[[str], list[Any]]) -> list[list[tuple]]:
    """What the saves store in a thread, made together; the same saves made one by one in
    another thread must store the same."""
    one_by_one, together = str(uuid.uuid4()), str(uuid.uuid4())
    for save in saves_for(one_by_one):
        await save()
    await saver.save_together(saves_for(together))
    stored = await _stored(saver, together)
    assert stored == await _stored(saver, one_by_one)
    return stored


async def test_saves_together_are_stored_as_one_by_one(savers: tuple[Any, Any]) -> None:
    ours, _ = savers
    stored = await _stored_both_ways(ours, functools.partial(_saves, ours))
    assert [len(rows) for rows in stored] == [1, 1, 4]  # a checkpoint, a blob, four writes


async def test_saves_together_serialize_their_blobs_without_a_thread(
    savers: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = savers

    async def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("serialized on a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    thread_id = str(uuid.uuid4())
    await ours.save_together(_saves(ours, thread_id))  # a checkpoint with a blob, then writes
    assert [len(rows) for rows in await _stored(ours, thread_id)] == [1, 1, 4]


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


def _overlapping_saves(saver: Any, thread_id: str) -> list[Any]:
    """Saves that meet on the same keys, as a resumed or retried step can: a checkpoint put
    twice, its blob twice, and each kind of write over each other."""
    first, second = empty_checkpoint(), empty_checkpoint()
    second["id"] = first["id"]
    first["channel_values"] = {"items": {"v": 1}}
    second["channel_values"] = {"items": {"v": 2}}
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    saved = {"configurable": {**config["configurable"], "checkpoint_id": first["id"]}}
    put = functools.partial(saver.aput, config)
    write = functools.partial(saver.aput_writes, saved)
    return [
        functools.partial(put, first, {"step": 0, "n": 1}, {"items": 1}),
        functools.partial(put, second, {"step": 0, "n": 2}, {"items": 1}),  # blob kept
        functools.partial(write, [("messages", "first")], "task-1"),
        functools.partial(write, [("messages", "second")], "task-1"),  # not over the first
        functools.partial(write, [(ERROR, "first error")], "task-2"),
        functools.partial(write, [(ERROR, "second error")], "task-2"),  # over the first
        functools.partial(write, [("messages", "m"), (ERROR, "mixed")], "task-3"),
        functools.partial(write, [(ERROR, "replaces mixed")], "task-3"),
        functools.partial(write, [(ERROR, "stays"), ("messages", "m")], "task-3"),
    ]


async def test_saves_on_the_same_keys_together_are_stored_as_one_by_one(
    savers: tuple[Any, Any],
) -> None:
    ours, _ = savers
    stored = await _stored_both_ways(ours, functools.partial(_overlapping_saves, ours))
    assert stored[0][0][1]["n"] == 2  # the later checkpoint replaced the earlier
    assert [len(rows) for rows in stored] == [1, 1, 5]


async def test_saves_together_are_one_statement(
    savers: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = savers
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if "checkpoint" in str(query):  # not the pool's check of a connection
            sent.append(str(query))
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    monkeypatch.setattr(psycopg.AsyncCursor, "executemany", counted)
    thread_id = str(uuid.uuid4())
    await ours.save_together(_saves(ours, thread_id) + _overlapping_saves(ours, thread_id))
    assert len(sent) == 1
    monkeypatch.undo()
    assert [len(rows) for rows in await _stored(ours, thread_id)] == [
        2,
        1,
        9,
    ]  # the two put the same blob


async def test_what_orjson_cannot_write_is_saved_the_librarys_way(
    savers: tuple[Any, Any],
) -> None:
    ours, _ = savers
    checkpoint = empty_checkpoint()
    # Over 64 bits: orjson refuses it, Postgres takes it. Inline in the checkpoint's JSON.
    checkpoint["channel_values"] = {"count": 2**70}

    def saves(thread_id: str) -> list[Any]:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        save = functools.partial(ours.aput, config, checkpoint, {"step": 0}, {"count": 1})
        return [save, *_saves(ours, thread_id)]

    stored = await _stored_both_ways(ours, saves)
    assert {"count": 2**70} in [row[0] for row in stored[0]]


async def test_a_save_that_fails_before_sending_leaves_the_earlier_ones_stored(
    savers: tuple[Any, Any],
) -> None:
    ours, _ = savers
    thread_id = str(uuid.uuid4())

    async def unserializable() -> None:
        raise TypeError("not serializable")

    with pytest.raises(TypeError, match="not serializable"):
        await ours.save_together([*_saves(ours, thread_id), unserializable])
    assert [len(rows) for rows in await _stored(ours, thread_id)] == [1, 1, 4]


async def test_the_saves_before_a_failure_are_stored_through_an_outage(
    savers: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = savers
    thread_id = str(uuid.uuid4())
    send = ours._send
    attempts: list[int] = []

    async def unreachable_once(statements: Any) -> None:
        attempts.append(len(statements))
        if len(attempts) == 1:
            raise psycopg.OperationalError("connection refused")
        await send(statements)

    async def unserializable() -> None:
        raise TypeError("not serializable")

    monkeypatch.setattr(ours, "_send", unreachable_once)
    with pytest.raises(TypeError, match="not serializable"):
        await ours.save_together([*_saves(ours, thread_id), unserializable])
    assert len(attempts) == 2  # made again after the outage, as a whole batch is
    assert [len(rows) for rows in await _stored(ours, thread_id)] == [1, 1, 4]


async def test_a_document_of_saves_stores_nothing_until_it_is_stored(
    savers: tuple[Any, Any],
) -> None:
    ours, _ = savers
    one_by_one, handed = str(uuid.uuid4()), str(uuid.uuid4())
    for save in _saves(ours, one_by_one) + _overlapping_saves(ours, one_by_one):
        await save()
    document = await ours.document_of(_saves(ours, handed) + _overlapping_saves(ours, handed))
    assert document is not None
    assert await _stored(ours, handed) == [[], [], []]
    await ours.store_document(document)
    await ours.store_document(document)  # made twice (a retry), stored once
    assert await _stored(ours, handed) == await _stored(ours, one_by_one)


async def test_saves_no_document_can_hold_are_stored_at_once(savers: tuple[Any, Any]) -> None:
    ours, _ = savers
    thread_id = str(uuid.uuid4())
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"count": 2**70}  # orjson refuses it
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    save = functools.partial(ours.aput, config, checkpoint, {"step": 0}, {"count": 1})
    assert await ours.document_of([save]) is None
    assert [len(rows) for rows in await _stored(ours, thread_id)] == [1, 0, 0]

    async def unserializable() -> None:
        raise TypeError("not serializable")

    other = str(uuid.uuid4())
    with pytest.raises(TypeError, match="not serializable"):
        await ours.document_of([*_saves(ours, other), unserializable])
    assert [len(rows) for rows in await _stored(ours, other)] == [1, 1, 4]
