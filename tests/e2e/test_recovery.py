"""A worker process killed mid-run: the run's lease expires, another process takes it back
and finishes it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support import REDIS_URL, Server, postgres_database, redis_prefix

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_lease_server() -> Iterator[Server]:
    with postgres_database() as uri, redis_prefix() as prefix:
        env = {
            "DATABASE_URI": uri,
            "REDIS_URI": REDIS_URL,
            "REDIS_KEY_PREFIX": prefix,
            "N_JOBS_PER_WORKER": "8",
            "BG_JOB_HEARTBEAT_SECS": "0.5",
            "BG_JOB_LEASE_SECS": "2",
        }
        with Server("serve", env=env, workers=2) as server:
            yield server


async def test_sigkilled_worker_run_completes_elsewhere(short_lease_server: Server) -> None:
    client = get_client(url=short_lease_server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "sleeper", input={"steps": 100, "delay": 0.02}, stream_mode=["custom"]
    )
    path = f"/threads/{tid}/runs/{run['run_id']}/stream"
    async with httpx.AsyncClient(base_url=short_lease_server.url, timeout=30) as http:
        async with http.stream("GET", path) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: ") and '"pid"' in line:
                    victim = int(line.split('"pid":')[1].rstrip("}"))
                    break
    assert victim in short_lease_server.worker_pids()
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    # A fresh client: the old one's pooled connection may belong to the killed process.
    client = get_client(url=short_lease_server.url)
    out = await asyncio.wait_for(client.runs.join(tid, run["run_id"]), 60)
    recovery = time.monotonic() - killed_at
    print(f"recovered {recovery:.2f}s after SIGKILL")
    assert out["count"] == 100 and out["pid"] != victim
    final = await client.runs.get(tid, run["run_id"])
    assert final["status"] == "success"
    # Lease (2 s) + a sweep period + the run's own 2 s of work, with margin.
    assert recovery < 15, recovery
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_sigkill_under_load_loses_nothing_and_resumes_from_checkpoints(
    short_lease_server: Server,
) -> None:
    """Many runs in flight on both workers; one worker is killed. Every run completes, and a
    run that was past some checkpoints goes on from there: no node that finished runs again
    (only the one in progress at the kill may)."""
    client = get_client(url=short_lease_server.url)
    total_steps, n_runs = 40, 12
    runs = []
    for _ in range(n_runs):
        thread = await client.threads.create()
        runs.append(
            await client.runs.create(
                thread["thread_id"],
                "counter",
                # count: 0 in the input: starting over would count from 1 again.
                input={"steps": total_steps, "delay": 0.05, "count": 0},
                stream_mode=["custom"],
                config={"recursion_limit": 500},
                # "sync" saves each step's checkpoint before the next step starts; with the
                # default "async" the checkpoints may lag a step or two under load, and then
                # more than the node in progress would legitimately run again.
                durability="sync",
            )
        )
    first = runs[0]
    path = f"/threads/{first['thread_id']}/runs/{first['run_id']}/stream"
    async with httpx.AsyncClient(base_url=short_lease_server.url, timeout=30) as http:
        async with http.stream("GET", path) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: ") and '"tick":3' in line:
                    victim = int(line.split('"pid":')[1].rstrip("}"))
                    break
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    client = get_client(url=short_lease_server.url)
    outs = await asyncio.wait_for(
        asyncio.gather(*(client.runs.join(r["thread_id"], r["run_id"]) for r in runs)), 90
    )
    recovery = time.monotonic() - killed_at
    print(
        f"{n_runs} accepted, {sum(o.get('count') == total_steps for o in outs)} completed, "
        f"all done {recovery:.2f}s after SIGKILL"
    )
    assert [o["count"] for o in outs] == [total_steps] * n_runs
    async with httpx.AsyncClient(base_url=short_lease_server.url, timeout=30) as http:
        listed = (await http.get("/runs", params={"status": "success", "limit": 1000})).json()
    attempts = {r["run_id"]: r["attempt"] for r in listed}
    taken_over = [r for r in runs if attempts[r["run_id"]] > 1]
    assert taken_over, "the killed worker held none of the runs"
    for r in runs:
        final = await client.runs.get(r["thread_id"], r["run_id"])
        assert final["status"] == "success"
        ticks = [
            p.data["tick"]
            async for p in client.runs.join_stream(r["thread_id"], r["run_id"])
            if p.event == "custom"
        ]
        assert sorted(set(ticks)) == list(range(1, total_steps + 1))
        repeated = len(ticks) - len(set(ticks))
        assert repeated <= 1, (r["run_id"], ticks)
    print(f"{len(taken_over)} runs taken over from the killed worker, none restarted")
    assert recovery < 30
