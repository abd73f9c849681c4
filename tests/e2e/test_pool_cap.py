"""LANGGRAPH_POSTGRES_POOL_MAX_SIZE: a process never holds more Postgres connections than its
capped pools allow, however many worker tasks it runs, and a burst larger than the pools
queues for connections and completes."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest
from langgraph_sdk import get_client

from tests.support import Server, postgres_database, production_env, redis_prefix

pytestmark = pytest.mark.e2e

CAP = 2
STORE_POOL = 5  # app/store/longterm.py
RUNS = 40


def _connections(uri: str) -> int:
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
        assert row is not None
        return int(row[0])


async def test_a_burst_queues_for_the_capped_pools_and_completes() -> None:
    with postgres_database() as uri, redis_prefix() as prefix:
        env = production_env(
            uri,
            prefix,
            N_JOBS_PER_WORKER=str(RUNS),  # uncapped, the pools would follow: 3 × 45 and 45
            LANGGRAPH_POSTGRES_POOL_MAX_SIZE=str(CAP),
        )
        with Server("serve", env=env, workers=1) as server:
            client = get_client(url=server.url)
            seen: list[int] = []
            done = asyncio.Event()

            async def watch() -> None:
                while not done.is_set():
                    seen.append(await asyncio.to_thread(_connections, uri))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.02)

            async def background(i: int) -> dict:
                thread = await client.threads.create()
                run = await client.runs.create(
                    thread["thread_id"], "counter", input={"steps": 3, "delay": 0.05}
                )
                return await client.runs.join(thread["thread_id"], run["run_id"])

            async def stateless(i: int) -> dict:
                return await client.runs.wait(None, "counter", input={"steps": 2})

            watcher = asyncio.create_task(watch())
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(
                        *(background(i) for i in range(RUNS)),
                        *(stateless(i) for i in range(RUNS)),
                    ),
                    120,
                )
            finally:
                done.set()
                await watcher
                await client.aclose()

            assert [r["count"] for r in results] == [3] * RUNS + [2] * RUNS
            # The tables' pool, the checkpointer's and the store's; nothing else in the process
            # talks to Postgres.
            assert max(seen) <= CAP + CAP + STORE_POOL, f"connections seen: {sorted(set(seen))}"
