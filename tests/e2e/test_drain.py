"""SIGTERM (a deploy): running runs get the grace period, the rest go back to `pending`
without an attempt charged, nothing is left `running`, and the next server picks them up."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support import Server, postgres_database, production_env, redis_prefix

pytestmark = pytest.mark.e2e


async def test_sigterm_hands_unfinished_runs_back() -> None:
    with postgres_database() as uri, redis_prefix() as prefix:
        env = production_env(uri, prefix, N_JOBS_PER_WORKER="3", BG_JOB_SHUTDOWN_GRACE_SECS="1")
        first = Server("serve", env=env, workers=2).start()
        try:
            client = get_client(url=first.url)
            long_runs = []
            for _ in range(4):
                t = await client.threads.create()
                long_runs.append(
                    await client.runs.create(
                        t["thread_id"], "sleeper", input={"steps": 10_000, "delay": 0.01}
                    )
                )
            short = await client.threads.create()
            short_run = await client.runs.create(
                short["thread_id"], "sleeper", input={"steps": 30, "delay": 0.01}
            )
            async with asyncio.timeout(20):
                for r in long_runs:
                    while (await client.runs.get(r["thread_id"], r["run_id"]))[
                        "status"
                    ] != "running":
                        await asyncio.sleep(0.05)
            # A stream left open must not hold the shutdown up.
            http = httpx.AsyncClient(base_url=first.url, timeout=60)
            path = f"/threads/{long_runs[0]['thread_id']}/runs/{long_runs[0]['run_id']}/stream"
            stream = await http.send(http.build_request("GET", path), stream=True)
            assert stream.status_code == 200
            await client.runs.join(short["thread_id"], short_run["run_id"])

            started = time.monotonic()
            code = first.stop(signal.SIGTERM, timeout=60)
            took = time.monotonic() - started
            await stream.aclose()
            await http.aclose()
            assert code == 0, first.log()
            assert took < 15, took
        finally:
            first.cleanup()

        second = Server("serve", env=env, workers=2).start()
        try:
            client = get_client(url=second.url)
            for r in long_runs:
                row = await client.runs.get(r["thread_id"], r["run_id"])
                assert row["status"] in ("pending", "running"), row
            assert (await client.runs.get(short["thread_id"], short_run["run_id"]))[
                "status"
            ] == "success"
            async with asyncio.timeout(20):
                for r in long_runs:
                    while (await client.runs.get(r["thread_id"], r["run_id"]))[
                        "status"
                    ] != "running":
                        await asyncio.sleep(0.05)
            for r in long_runs:
                await client.runs.cancel(r["thread_id"], r["run_id"], wait=True)
        except Exception as exc:
            # A server that went away says why only in its log.
            raise AssertionError(f"{exc!r}; the second server's log:\n{second.log()}") from exc
        finally:
            second.cleanup()


async def test_an_open_wait_does_not_hold_the_drain_up() -> None:
    """Uvicorn runs the app's shutdown only once open requests end, and a `runs/wait` can
    wait for a run of the very process being stopped: the drain must start at the signal, so
    the run is handed back within the grace period instead of running on until the kill."""
    import psycopg

    with postgres_database() as uri, redis_prefix() as prefix:
        env = production_env(uri, prefix, N_JOBS_PER_WORKER="2", BG_JOB_SHUTDOWN_GRACE_SECS="1")
        server = Server("serve", env=env, workers=1).start()
        http = httpx.AsyncClient(base_url=server.url, timeout=60)
        try:
            thread = (await http.post("/threads", json={})).json()
            # The request creates the run and waits for it: while the run exists, it waits.
            waiting = asyncio.create_task(
                http.post(
                    f"/threads/{thread['thread_id']}/runs/wait",
                    json={"assistant_id": "sleeper", "input": {"steps": 10_000, "delay": 0.01}},
                )
            )

            def status() -> str | None:
                with psycopg.connect(uri, autocommit=True) as conn:
                    row = conn.execute("SELECT status FROM runs").fetchone()
                return row[0] if row else None

            async with asyncio.timeout(20):
                while await asyncio.to_thread(status) != "running":
                    assert not waiting.done(), waiting
                    await asyncio.sleep(0.05)
            assert server.proc is not None
            signalled = time.monotonic()
            os.killpg(server.proc.pid, signal.SIGTERM)
            now = "running"
            while time.monotonic() - signalled < 8 and now == "running":
                await asyncio.sleep(0.1)
                now = await asyncio.to_thread(status) or "gone"
            handed_back = time.monotonic() - signalled
            assert now == "pending", (now, server.log())
            assert handed_back < 6, handed_back
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        finally:
            await http.aclose()
            server.cleanup()
