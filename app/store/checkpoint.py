"""LangGraph's own checkpointers: the Postgres saver in production, the SQLite saver embedded."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from app.store.pg_pool import open_pool


class Checkpoints:
    """Owns the checkpointer and its connections for the life of a process."""

    def __init__(self, *, postgres_uri: str | None, sqlite_path: Path, pool_size: int) -> None:
        self._postgres_uri = postgres_uri
        self._sqlite_path = sqlite_path
        self._pool_size = pool_size
        self._pool: Any = None
        self._sqlite: Any = None
        self.saver: BaseCheckpointSaver | None = None

    async def open(self) -> BaseCheckpointSaver:
        if self._postgres_uri:
            from app.store.pg_saver import PostgresSaver

            self._pool = await open_pool(self._postgres_uri, self._pool_size)
            saver = PostgresSaver(self._pool)
            # The saver holds one lock around every statement, which a single shared
            # connection needs and a pool does not (langgraph issue 7259): with it, every run
            # of the process waited for every other run's checkpoint writes, one at a time.
            # As many at once as the pool has connections.
            saver.lock = asyncio.Semaphore(self._pool_size)  # type: ignore[assignment]
            self.saver = saver
        else:
            from app.store.sqlite_saver import InlineSqliteSaver, connect

            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self._sqlite = InlineSqliteSaver(connect(self._sqlite_path))
            self.saver = self._sqlite
        return self.saver

    async def setup(self) -> None:
        assert self.saver is not None
        if self._sqlite is not None:
            self._sqlite.setup()
        else:
            await self.saver.setup()  # type: ignore[attr-defined]

    async def delete_thread(self, thread_id: str) -> None:
        if self.saver is not None:
            await self.saver.adelete_thread(thread_id)

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        """Forget the checkpoints a run wrote (rollback). The savers key them by run_id metadata."""
        if self._pool is not None:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM checkpoint_writes w USING checkpoints c "
                    "WHERE c.thread_id = %s AND c.metadata->>'run_id' = %s "
                    "AND w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns "
                    "AND w.checkpoint_id = c.checkpoint_id",
                    (thread_id, run_id),
                )
                await conn.execute(
                    "DELETE FROM checkpoints WHERE thread_id = %s AND metadata->>'run_id' = %s",
                    (thread_id, run_id),
                )
        elif self._sqlite is not None:
            with self._sqlite.cursor() as cur:  # one transaction, under the saver's lock
                cur.execute(
                    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN ("
                    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? "
                    "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?)",
                    (thread_id, thread_id, run_id),
                )
                cur.execute(
                    "DELETE FROM checkpoints WHERE thread_id = ? "
                    "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
                    (thread_id, run_id),
                )

    async def copy_thread(self, source: str, target: str) -> int:
        """Copy every checkpoint and pending write of a thread, in every namespace, oldest
        first so each keeps its parent. Neither saver implements `acopy_thread` itself."""
        assert self.saver is not None
        saver = self.saver
        found = [t async for t in saver.alist({"configurable": {"thread_id": source}})]
        for saved in reversed(found):
            conf = saved.config["configurable"]
            parent = (saved.parent_config or {}).get("configurable", {}).get("checkpoint_id")
            into: dict[str, Any] = {
                "thread_id": target,
                "checkpoint_ns": conf.get("checkpoint_ns", ""),
            }
            if parent:
                into["checkpoint_id"] = parent
            written = await saver.aput(
                {"configurable": into},
                saved.checkpoint,
                {**saved.metadata, "thread_id": target},
                dict(saved.checkpoint.get("channel_versions", {})),
            )
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in saved.pending_writes or ():
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await saver.aput_writes(written, writes, task_id)
        return len(found)

    async def keep_latest(self, thread_id: str) -> None:
        """Drop every checkpoint of a thread but the latest of each namespace."""
        assert self.saver is not None
        saver = self.saver
        if self._pool is not None:
            # The Postgres saver prunes itself, blobs included.
            await saver.aprune([thread_id], strategy="keep_latest")
            return
        latest: dict[str, str] = {}
        stale: list[tuple[str, str]] = []
        async for saved in saver.alist({"configurable": {"thread_id": thread_id}}):
            conf = saved.config["configurable"]
            ns, checkpoint_id = conf.get("checkpoint_ns", ""), conf["checkpoint_id"]
            if ns in latest:
                stale.append((ns, checkpoint_id))
            else:
                latest[ns] = checkpoint_id
        if not stale:
            return
        if self._sqlite is not None:
            with self._sqlite.cursor() as cur:
                for ns, checkpoint_id in stale:
                    for table in ("writes", "checkpoints"):
                        cur.execute(
                            f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ? "
                            "AND checkpoint_id = ?",
                            (thread_id, ns, checkpoint_id),
                        )

    async def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
        if self._sqlite is not None:
            with contextlib.suppress(Exception):
                self._sqlite.conn.close()
