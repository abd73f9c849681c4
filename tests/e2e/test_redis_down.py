"""Redis is an accelerator: with it down, runs are still accepted, claimed by polling Postgres,
joined and cancelled; when it returns, streams relay again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import redis
from langgraph_sdk import get_client

from tests.support import PrivateRedis, Server, postgres_database

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis().start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def server_on_private_redis(private_redis: PrivateRedis) -> Iterator[Server]:
    with postgres_database() as uri:
        env = {
            "DATABASE_URI": uri,
            "REDIS_URI": private_redis.url,
            "N_JOBS_PER_WORKER": "4",
            "BG_JOB_HEARTBEAT_SECS": "0.5",
        }
        with Server("serve", env=env, workers=2) as server:
            yield server


async def test_runs_complete_and_cancel_with_redis_down(
    server_on_private_redis: Server, private_redis: PrivateRedis
) -> None:
    client = get_client(url=server_on_private_redis.url)
    assert (await client.runs.wait(None, "counter", input={"steps": 1}))["count"] == 1

    private_redis.stop()
    async with httpx.AsyncClient(base_url=server_on_private_redis.url, timeout=30) as http:
        ready = await http.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert (await http.get("/ok")).status_code == 200
    # A stream opened now follows the run in Postgres: it ends, with the final values.
    streamed = [p async for p in client.runs.stream(None, "counter", input={"steps": 2})]
    assert streamed[0].event == "metadata"
    assert streamed[-1].event == "values" and streamed[-1].data["count"] == 2
    threads = [await client.threads.create() for _ in range(6)]
    runs = [
        await client.runs.create(t["thread_id"], "counter", input={"steps": 3}) for t in threads
    ]
    long_thread = await client.threads.create()
    long_run = await client.runs.create(
        long_thread["thread_id"], "sleeper", input={"steps": 10_000, "delay": 0.01}
    )
    outputs = await asyncio.wait_for(
        asyncio.gather(*(client.runs.join(r["thread_id"], r["run_id"]) for r in runs)), 30
    )
    assert [o["count"] for o in outputs] == [3] * 6
    for r in runs:
        assert (await client.runs.get(r["thread_id"], r["run_id"]))["status"] == "success"

    async with asyncio.timeout(15):
        while (await client.runs.get(long_thread["thread_id"], long_run["run_id"]))[
            "status"
        ] != "running":
            await asyncio.sleep(0.05)
    # The cancel cannot travel through Redis: the heartbeat finds it in Postgres.
    await asyncio.wait_for(
        client.runs.cancel(long_thread["thread_id"], long_run["run_id"], wait=True), 15
    )
    final = await client.runs.get(long_thread["thread_id"], long_run["run_id"])
    assert final["status"] == "interrupted"

    private_redis.start_again()
    # The runs that ran meanwhile have no log in Redis: joining one gives Postgres's outcome.
    joined = [p async for p in client.runs.join_stream(runs[0]["thread_id"], runs[0]["run_id"])]
    assert [p.event for p in joined] == ["metadata", "values"]
    assert joined[-1].data["count"] == 3
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "counter", input={"steps": 3}, stream_mode=["custom"]
        )
    ]
    assert [p.data["tick"] for p in parts if p.event == "custom"] == [1, 2, 3]


async def test_flushall_mid_flight_loses_no_run(
    server_on_private_redis: Server, private_redis: PrivateRedis
) -> None:
    client = get_client(url=server_on_private_redis.url)
    runs = []
    for i in range(30):
        thread = await client.threads.create()
        steps = 40 if i % 3 == 0 else 2
        runs.append(
            await client.runs.create(
                thread["thread_id"], "sleeper", input={"steps": steps, "delay": 0.02}
            )
        )
    redis.Redis(port=private_redis.port).flushall()
    outputs = await asyncio.wait_for(
        asyncio.gather(*(client.runs.join(r["thread_id"], r["run_id"]) for r in runs)), 60
    )
    assert [o["count"] for o in outputs] == [40 if i % 3 == 0 else 2 for i in range(30)]
    for r in runs:
        assert (await client.runs.get(r["thread_id"], r["run_id"]))["status"] == "success"
