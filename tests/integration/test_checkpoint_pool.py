"""The Postgres checkpointer uses its pool at once: one run's checkpoint write does not wait
for another's."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from langgraph.checkpoint.base import empty_checkpoint

from app.store.checkpoint import Checkpoints


async def test_a_checkpoint_write_does_not_wait_for_another(
    own_pg_uri: str, tmp_path: Path
) -> None:
    checkpoints = Checkpoints(postgres_uri=own_pg_uri, sqlite_path=tmp_path / "x.db", pool_size=3)
    saver = await checkpoints.open()
    try:
        await checkpoints.setup()
        config = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
        # Another run's statement in progress: it holds a connection of the pool.
        async with saver._cursor() as busy:  # type: ignore[attr-defined]
            await busy.execute("SELECT 1")
            written = await asyncio.wait_for(
                saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {}),
                10,
            )
        stored = await saver.aget_tuple(written)
        assert stored is not None
        assert (
            stored.config["configurable"]["checkpoint_id"]
            == written["configurable"]["checkpoint_id"]
        )
    finally:
        await checkpoints.close()
