"""LangGraph's Postgres checkpointer, with its pending writes saved the cheap way.

A run saves a task's writes once per step (`aput_writes`). The library serializes them on a
worker thread and sends them in pipeline mode; for the one or two small rows a step writes,
the thread hop (a wake-up there and one back on the event loop) and the pipeline's extra
synchronisation cost more CPU than the statement itself: 430 µs a call against 210 µs,
measured on one connection. Here the rows are serialized where they are written and sent as
one ordinary statement (several rows: in one pipeline, as the library does).
The rows, the statements and their conflict rules are the library's own.
Reading them back, the library hands their unpacking to a worker thread too, once per
checkpoint read (a run on an existing thread, a thread's state, each entry of its history),
while it unpacks the checkpoint's own values, larger as a rule, on the event loop. Here they
are unpacked where they are read, by the library's own code (its synchronous saver's).

`save_together` stores several of the library's saves (checkpoints and writes) with one
statement: one round trip and one transaction for all of them, where each would be a round trip
and a commit of its own. The saves run as they would alone, but what they would send is kept
(`_Kept`), and their rows go out in one JSON document to one statement with an INSERT per
table and conflict rule (`_TOGETHER`): a one-node run's seven statements cost 800 µs of CPU in
psycopg's pipeline, the one statement 400 µs with the saves' own work. Rows for the same key
are merged first as the database would apply them one by one (a statement may not touch a row
twice). Statements of other kinds, or values orjson cannot write, go the library's way, in one
pipeline. A checkpoint saved this way is built by the library's synchronous `put`, which
serializes its blobs in place, where the async `aput` hands them to a worker thread
(`_Keeping`). A run hands its saves over this way (see app/agents/save_queue.py), except its
last ones: `document_of` gives their document to the run's finalize, which stores it in its
own statement (`saving_ctes`, app/store/hot.py), a round trip and a commit fewer per run.

A save, or a read of a checkpoint, that finds the database unreachable (a restart, a
failover) is made again, with backoff, for up to `SAVE_RETRY_SECS`, as a run's finalize is: a
short outage delays the run whose checkpoint it is instead of failing it. The library's
statements upsert or skip rows that exist, so a save made twice stores what it stores once.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres import PostgresSaver as LibrarySyncSaver
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor, OperationalError
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from app.store.db import with_backoff

T = TypeVar("T")
log = logging.getLogger(__name__)

SAVE_RETRY_SECS = 120.0

# Where the statements of the saves the current task is batching go instead of the database.
_KEEP: ContextVar[_Kept | None] = ContextVar("checkpoint_batch", default=None)


# The library's rows of all three tables, in one JSON document: an array of rows per table and
# conflict rule, a row an array of its columns, blobs in base64. JSON because psycopg builds
# array parameters in Python, value by value (slower than the seven statements), where orjson
# writes the document in C.
def saving_ctes(document: str) -> str:
    """The common table expressions that store a batch document given as the parameter
    `document` (`%s`, `$11`): a statement may end a run and store its last saves at once."""
    return f"""
saving AS (SELECT {document}::jsonb AS doc), saved_blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT r->>0, r->>1, r->>2, r->>3, r->>4, decode(r->>5, 'base64')
    FROM saving, jsonb_array_elements(doc->0) r
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
), saved_checkpoints AS (
    INSERT INTO checkpoints
        (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
    SELECT r->>0, r->>1, r->>2, r->>3, r->4, r->5
    FROM saving, jsonb_array_elements(doc->1) r
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
), saved_replacing AS (
    INSERT INTO checkpoint_writes
        (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
    SELECT r->>0, r->>1, r->>2, r->>3, r->>4, (r->>5)::int, r->>6, r->>7, decode(r->>8, 'base64')
    FROM saving, jsonb_array_elements(doc->2) r
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob
), saved_others AS (
    INSERT INTO checkpoint_writes
        (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
    SELECT r->>0, r->>1, r->>2, r->>3, r->>4, (r->>5)::int, r->>6, r->>7, decode(r->>8, 'base64')
    FROM saving, jsonb_array_elements(doc->3) r
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING
)"""


# Data-modifying expressions run to completion whether or not the query reads them.
_TOGETHER = f"WITH {saving_ctes('%s')}\nSELECT 1"


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Jsonb):
        return value.obj
    return value


class _Kept:
    """A cursor that keeps what it is given to execute, for `save_together`."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, list[Sequence[Any]]]] = []

    def keep(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements.append((query, list(rows)))

    async def execute(self, query: str, params: Sequence[Any] = (), **_: Any) -> None:
        self.keep(query, [params])

    async def executemany(self, query: str, params_seq: Sequence[Sequence[Any]], **_: Any) -> None:
        self.keep(query, params_seq)


class _KeptSync:
    """The same, for the library's synchronous code."""

    def __init__(self, kept: _Kept) -> None:
        self.kept = kept

    def execute(self, query: str, params: Sequence[Any] = (), **_: Any) -> None:
        self.kept.keep(query, [params])

    def executemany(self, query: str, params_seq: Sequence[Sequence[Any]], **_: Any) -> None:
        self.kept.keep(query, params_seq)


class _Keeping:
    """The saver as the library's synchronous `put` sees it inside `save_together`: its cursor
    keeps the statements. That `put` serializes a checkpoint's blobs where it is called; the
    async `aput` hands them to a worker thread, a hop per checkpoint with new blobs."""

    def __init__(self, saver: PostgresSaver, kept: _Kept) -> None:
        self._saver = saver
        self._kept = kept

    def __getattr__(self, name: str) -> Any:
        return getattr(self._saver, name)  # its serializer, statements and row builders

    @contextlib.contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[_KeptSync]:
        yield _KeptSync(self._kept)


class PostgresSaver(AsyncPostgresSaver):
    async def save_together(self, saves: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        """Store the saves (calls of this saver's `aput` and `aput_writes`) in one statement:
        one round trip and one implicit transaction. A save that fails before it sends
        anything (its values would not serialize) leaves the saves before it stored, as
        saving one by one would; a statement the database refuses leaves none of the batch
        stored. Either way the error is raised."""
        await self._store_kept(*await self._keep(saves))

    async def document_of(self, saves: Sequence[Callable[[], Awaitable[Any]]]) -> str | None:
        """The saves as a batch document, for another statement to store (`saving_ctes`);
        None when they were stored here instead, as `save_together` stores them: a save that
        is not one of the library's, a value orjson cannot write, or a save that failed (its
        error is raised)."""
        kept, failed = await self._keep(saves)
        if failed is None and kept.statements:
            document = self._as_document(kept.statements)
            if document is not None:
                return document
        await self._store_kept(kept, failed)
        return None

    async def store_document(self, document: str) -> None:
        """Store a batch document from `document_of` with a statement of its own."""
        await _while_unreachable(functools.partial(self._send_document, document))

    async def _keep(
        self, saves: Sequence[Callable[[], Awaitable[Any]]]
    ) -> tuple[_Kept, BaseException | None]:
        """Make the saves, keeping what they would send; the first failure stops them."""
        kept = _Kept()
        token = _KEEP.set(kept)
        try:
            for save in saves:
                await save()
        except BaseException as exc:  # noqa: BLE001 - the caller raises it, once the rest is stored
            return kept, exc
        finally:
            _KEEP.reset(token)
        return kept, None

    async def _store_kept(self, kept: _Kept, failed: BaseException | None) -> None:
        """Send what the saves kept, with the outage retry; then raise the failure, if any."""
        if kept.statements:
            await _while_unreachable(functools.partial(self._send, kept.statements))
        if failed is not None:
            raise failed

    async def _send(self, statements: list[tuple[str, list[Sequence[Any]]]]) -> None:
        document = self._as_document(statements)
        if document is not None:
            await self._send_document(document)
            return
        async with self.lock, _ainternal.get_connection(self.conn) as conn:
            async with conn.pipeline(), conn.cursor(binary=True) as cur:
                for query, rows in statements:  # not only the library's saves: one by one
                    await cur.executemany(query, rows)

    async def _send_document(self, document: str) -> None:
        async with self.lock, _ainternal.get_connection(self.conn) as conn:
            await conn.execute(_TOGETHER, (document,))

    def _as_document(self, statements: list[tuple[str, list[Sequence[Any]]]]) -> str | None:
        """The parameter of `_TOGETHER` for these statements of the library's, their rows merged
        per key as the database would apply them in turn; None for a statement of another kind."""
        blobs: dict[tuple[Any, ...], Sequence[Any]] = {}
        checkpoints: dict[tuple[Any, ...], Sequence[Any]] = {}
        replacing: dict[tuple[Any, ...], Sequence[Any]] = {}
        others: dict[tuple[Any, ...], Sequence[Any]] = {}
        for query, rows in statements:
            if query == self.UPSERT_CHECKPOINT_BLOBS_SQL:
                for row in rows:
                    blobs.setdefault(tuple(row[:4]), row)  # the first is kept
            elif query == self.UPSERT_CHECKPOINTS_SQL:
                for row in rows:
                    checkpoints[tuple(row[:3])] = row  # the last replaces the others
            elif query == self.UPSERT_CHECKPOINT_WRITES_SQL:
                for row in rows:
                    key = (*row[:4], row[5])
                    others.pop(key, None)
                    replacing[key] = row
            elif query == self.INSERT_CHECKPOINT_WRITES_SQL:
                for row in rows:
                    key = (*row[:4], row[5])
                    if key not in replacing:
                        others.setdefault(key, row)
            else:
                return None
        document = [
            [[_json_value(value) for value in row] for row in table.values()]
            for table in (blobs, checkpoints, replacing, others)
        ]
        try:
            return orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # not for orjson (an integer over 64 bits): the library's own way
            return None

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        kept = _KEEP.get()
        if kept is not None:  # inside save_together: nothing is sent, nothing to wait for
            keeping = _Keeping(self, kept)
            return LibrarySyncSaver.put(keeping, config, checkpoint, metadata, new_versions)  # type: ignore[arg-type]
        save = functools.partial(
            AsyncPostgresSaver.aput, self, config, checkpoint, metadata, new_versions
        )
        return await _while_unreachable(save)

    @contextlib.asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        kept = _KEEP.get()
        if kept is None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        yield kept  # type: ignore[misc] - inside save_together: sent at its end

    async def _load_checkpoint_tuple(self, value: DictRow) -> CheckpointTuple:
        return LibrarySyncSaver._load_checkpoint_tuple(self, value)  # type: ignore[arg-type]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        # A read is retried too: the first use of a pooled connection that a restart killed
        # fails, and the run's final state (its output) is read right after its last save.
        read = functools.partial(AsyncPostgresSaver.aget_tuple, self, config)
        return await _while_unreachable(read)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        save = functools.partial(self._put_writes, config, writes, task_id, task_path)
        await _while_unreachable(save)

    async def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        # Special writes (errors, interrupts, ...) replace an earlier one of the same task;
        # the others never overwrite.
        query = (
            self.UPSERT_CHECKPOINT_WRITES_SQL
            if all(channel in WRITES_IDX_MAP for channel, _ in writes)
            else self.INSERT_CHECKPOINT_WRITES_SQL
        )
        configurable = config["configurable"]
        rows = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        if len(rows) == 1:
            async with self._cursor() as cur:
                await cur.execute(query, rows[0])
        elif rows:
            # In one pipeline, as the library sends them: all rows or none.
            async with self._cursor(pipeline=True) as cur:
                await cur.executemany(query, rows)


async def _while_unreachable(save: Callable[[], Awaitable[T]]) -> T:
    if _KEEP.get() is not None:
        return await save()  # in a batch: nothing is sent yet
    return await with_backoff(
        save,
        deadline=time.monotonic() + SAVE_RETRY_SECS,
        clock=time.monotonic,
        retry_on=OperationalError,  # no connection, or it broke: not the statement
        on_retry=_note_retry,
    )


def _note_retry(exc: BaseException, delay: float) -> None:
    log.warning("checkpoint not saved or read (%s); trying again in %.1f s", exc, delay)
