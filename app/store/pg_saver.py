"""LangGraph's Postgres checkpointer, with its pending writes saved the cheap way.

A run saves a task's writes once per step (`aput_writes`). The library serializes them on a
worker thread and sends them in pipeline mode; for the one or two small rows a step writes,
the thread hop (a wake-up there and one back on the event loop) and the pipeline's extra
synchronisation cost more CPU than the statement itself: 430 µs a call against 210 µs,
measured on one connection. Here the rows are serialized where they are written and sent as
one ordinary statement (several rows: in one pipeline, as the library does).
The rows, the statements and their conflict rules are the library's own.

`save_together` runs several of the library's saves (checkpoints and writes) on one connection
in one pipeline: one round trip and one transaction for all of them, where each would be a
round trip and a commit of its own. A run hands its saves over this way (see
app/agents/save_queue.py).

A save, or a read of a checkpoint, that finds the database unreachable (a restart, a
failover) is made again, with backoff, for up to `SAVE_RETRY_SECS`, as a run's finalize is: a
short outage delays the run whose checkpoint it is instead of failing it. The library's
statements upsert or skip rows that exist, so a save made twice stores what it stores once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, AsyncCursor, OperationalError
from psycopg.rows import DictRow, dict_row

from app.store.db import with_backoff

T = TypeVar("T")
log = logging.getLogger(__name__)

SAVE_RETRY_SECS = 120.0

# The connection of the batch the current task is saving, if any.
_BATCH: ContextVar[AsyncConnection[DictRow] | None] = ContextVar("checkpoint_batch", default=None)


class PostgresSaver(AsyncPostgresSaver):
    async def save_together(self, saves: Sequence[Callable[[], Awaitable[Any]]]) -> None:
        """Run the saves (calls of this saver's `aput` and `aput_writes`) in order on one
        connection, in one pipeline: one round trip and one implicit transaction. A save that
        fails before it sends anything (its values would not serialize) leaves the saves
        before it stored, as saving one by one would; a statement the database refuses
        leaves none of the batch stored. Either way the error is raised."""

        async def batch() -> None:
            async with self.lock, _ainternal.get_connection(self.conn) as conn:
                token = _BATCH.set(conn)
                try:
                    async with conn.pipeline():
                        for save in saves:
                            await save()
                finally:
                    _BATCH.reset(token)

        await _while_unreachable(batch)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        save = functools.partial(
            AsyncPostgresSaver.aput, self, config, checkpoint, metadata, new_versions
        )
        return await _while_unreachable(save)

    @contextlib.asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        conn = _BATCH.get()
        if conn is None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        # Inside save_together: the batch's lock and connection are held already, and its
        # pipeline sends everything at its end.
        async with conn.cursor(binary=True, row_factory=dict_row) as cur:
            yield cur

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
    if _BATCH.get() is not None:
        return await save()  # in a batch: the batch is made again as a whole
    return await with_backoff(
        save,
        deadline=time.monotonic() + SAVE_RETRY_SECS,
        clock=time.monotonic,
        retry_on=OperationalError,  # no connection, or it broke: not the statement
        on_retry=_note_retry,
    )


def _note_retry(exc: BaseException, delay: float) -> None:
    log.warning("checkpoint not saved or read (%s); trying again in %.1f s", exc, delay)
