"""Postgres restarts under a running server: it reports itself down meanwhile, reconnects on
its own, finishes the run that was in flight, and takes new runs afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph_sdk import get_client

from app.store.checkpoint import Checkpoints
from tests.support import PrivatePostgres, Server, production_env, redis_prefix

pytestmark = pytest.mark.e2e


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init()
    try:
        yield pg
    finally:
        pg.cleanup()


async def test_server_survives_a_postgres_restart(postgres: PrivatePostgres) -> None:
    with redis_prefix() as prefix:
        env = production_env(postgres.uri, prefix, BG_JOB_HEARTBEAT_SECS="0.5")
        with Server("serve", env=env, workers=2) as server:
            client = get_client(url=server.url)
            assert (await client.runs.wait(None, "counter", input={"steps": 1}))["count"] == 1
            thread = await client.threads.create()
            tid = thread["thread_id"]
            run = await client.runs.create(
                tid, "sleeper", input={"steps": 200, "delay": 0.02}, durability="exit"
            )
            async with asyncio.timeout(15):
                while (await client.runs.get(tid, run["run_id"]))["status"] != "running":
                    await asyncio.sleep(0.05)

            await asyncio.to_thread(postgres.stop)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                ready = await http.get("/ready")
                assert ready.status_code == 503 and ready.json()["status"] == "down"
                assert (await http.get("/ok")).status_code == 200
            await asyncio.sleep(1)
            await asyncio.to_thread(postgres.start)

            client = get_client(url=server.url)
            out = await asyncio.wait_for(client.runs.join(tid, run["run_id"]), 60)
            row = await client.runs.get(tid, run["run_id"])
            # What the run ended with, and the server's last words, if it has no output.
            assert "count" in out, (out, row["status"], row.get("error"), server.log()[-3000:])
            assert out["count"] == 200
            assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
            results = await asyncio.gather(
                *(client.runs.wait(None, "counter", input={"steps": 2}) for _ in range(10))
            )
            assert [r["count"] for r in results] == [2] * 10


async def test_server_started_while_postgres_is_down_waits_for_it(
    postgres: PrivatePostgres,
) -> None:
    """Gunicorn stops altogether when a worker fails to boot, so a worker (re)started during
    a database outage must wait for the database instead of failing."""
    with redis_prefix() as prefix:
        env = production_env(postgres.uri, prefix)
        await asyncio.to_thread(postgres.stop)
        server = Server("serve", env=env, workers=2)
        starting = asyncio.create_task(asyncio.to_thread(server.start, 90))
        try:
            async with asyncio.timeout(60):
                while "database unreachable" not in (
                    server.log() if server.log_path.exists() else ""
                ):
                    assert not starting.done(), server.log()
                    await asyncio.sleep(0.1)
            await asyncio.to_thread(postgres.start)
            await starting
            client = get_client(url=server.url)
            out = await client.runs.wait(None, "counter", input={"steps": 2})
            assert out["count"] == 2
            assert len(server.worker_pids()) == 2
        finally:
            await asyncio.to_thread(server.cleanup)
            await asyncio.gather(starting, return_exceptions=True)


@pytest.mark.parametrize("durability", ["exit", "async"])
async def test_a_checkpoint_due_while_postgres_is_down_is_saved_once_it_is_back(
    postgres: PrivatePostgres, durability: str
) -> None:
    """A run whose checkpoint is due during an outage waits for the database instead of
    failing: its final checkpoint (durability `exit`), or the one of its last step (`async`,
    saved behind the run), is saved after the restart and the run succeeds."""
    steps = 30
    with redis_prefix() as prefix:
        env = production_env(postgres.uri, prefix, BG_JOB_HEARTBEAT_SECS="0.5")
        with Server("serve", env=env, workers=1) as server:
            client = get_client(url=server.url)
            thread = await client.threads.create()
            tid = thread["thread_id"]
            run = await client.runs.create(
                tid,
                "sleeper",
                input={"steps": steps, "delay": 0.05},
                durability=durability,
                stream_mode=["custom"],
            )
            ticks: list[int] = []
            stopped = False
            async with asyncio.timeout(90):
                async for part in client.runs.join_stream(tid, run["run_id"]):
                    if part.event != "custom":
                        continue
                    ticks.append(part.data["tick"])
                    if not stopped:
                        # Down from the first step on: every save after it meets the outage.
                        await asyncio.to_thread(postgres.stop)
                        stopped = True
                    if part.data["tick"] == steps:
                        # The node has written its last event: its checkpoint is due now.
                        await asyncio.sleep(1)
                        await asyncio.to_thread(postgres.start)
            assert ticks[-1] == steps
            out = await asyncio.wait_for(client.runs.join(tid, run["run_id"]), 60)
            assert out["count"] == steps
            assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
            assert "checkpoint not saved" in server.log()


async def test_a_checkpoint_is_read_through_a_connection_a_restart_killed(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Right after a restart, the pool's connections used a moment before it are dead and
    not yet pinged (they were idle for less than PING_IDLE_SECS): the first read through one
    fails, and is made again on a fresh connection."""
    checkpoints = Checkpoints(postgres_uri=postgres.uri, sqlite_path=tmp_path / "x.db", pool_size=1)
    saver = await checkpoints.open()
    try:
        await checkpoints.setup()
        config = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
        written = await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
        stored = await asyncio.wait_for(saver.aget_tuple(written), 30)
        assert stored is not None
    finally:
        await checkpoints.close()
