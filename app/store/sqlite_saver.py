"""The embedded checkpointer: LangGraph's SQLite saver, called on the event loop.

LangGraph's async SQLite saver runs every call on aiosqlite's thread and hands each result back
to the event loop: thread wake-ups that cost more than the statements, which SQLite answers
in microseconds from a local file. Here the async methods are the library's synchronous ones,
called where they are awaited: same tables, rows, serialization and commits. The reasons it is
safe are those of the embedded store's driver (app/store/sqlite_inline.py): one process, a
file of its own, WAL.

A listing is read in full before its first checkpoint is handed out: the library's listing
holds the saver's lock while it iterates, and a consumer awaiting between two checkpoints
would let a save of the same process wait for that lock on the event loop's own thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver


def connect(path: Path) -> sqlite3.Connection:
    """The checkpoint file's connection, set up as the embedded store's: WAL, and commits
    that are durable across a crash of the process without an fsync each."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class InlineSqliteSaver(SqliteSaver):
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the library's name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for saved in list(self.list(config, filter=filter, before=before, limit=limit)):
            yield saved

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, Any]:
        return self.get_delta_channel_history(config=config, channels=channels)
