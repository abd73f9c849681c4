"""What crosses processes: a run accepted, streamed, joined or cancelled through one server
process executes in another (Gunicorn workers of `production`; `api_only` runs nothing)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.support import Server

pytestmark = pytest.mark.e2e


async def _wait_running(client, thread_id: str, run_id: str) -> None:
    async with asyncio.timeout(15):
        while (await client.runs.get(thread_id, run_id))["status"] != "running":
            await asyncio.sleep(0.02)


async def test_stream_through_a_process_that_does_not_execute(
    api_only: Server, production: Server
) -> None:
    client = get_client(url=api_only.url)
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "counter", input={"steps": 5}, stream_mode=["custom", "values"]
        )
    ]
    pids = {p.data["pid"] for p in parts if p.event == "custom"}
    assert pids and pids <= set(production.worker_pids())
    assert [p.data["tick"] for p in parts if p.event == "custom"] == [1, 2, 3, 4, 5]
    assert parts[-1].data["count"] == 5


async def test_cancel_from_another_process_stops_the_run_within_a_second(
    api_only: Server, production: Server
) -> None:
    executor = get_client(url=production.url)
    canceller = get_client(url=api_only.url)
    thread = await executor.threads.create()
    tid = thread["thread_id"]
    run = await executor.runs.create(tid, "sleeper", input={"steps": 10_000, "delay": 0.01})
    await _wait_running(executor, tid, run["run_id"])
    started = time.monotonic()
    await canceller.runs.cancel(tid, run["run_id"], wait=True)
    elapsed = time.monotonic() - started
    assert (await executor.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert elapsed < 1.0, elapsed


async def test_a_cancel_naming_another_thread_stops_nothing(
    api_only: Server, production: Server
) -> None:
    """The cancel's control message goes out before the run is read; the worker applies it
    only to the run of the thread named."""
    executor = get_client(url=production.url)
    canceller = get_client(url=api_only.url)
    tid = (await executor.threads.create())["thread_id"]
    other = (await executor.threads.create())["thread_id"]
    run = await executor.runs.create(
        tid, "sleeper", input={"steps": 10_000, "delay": 0.01}, stream_mode=["custom"]
    )
    await _wait_running(executor, tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await canceller.runs.cancel(other, run["run_id"])
    # Sent before the 404 answered; the run goes on well past its arrival (30 ticks, 0.3 s).
    ticks = 0
    async with asyncio.timeout(15):
        async for part in executor.runs.join_stream(tid, run["run_id"], stream_mode="custom"):
            if part.event == "custom":
                ticks += 1
                if ticks == 30:
                    break
    assert ticks == 30
    assert (await executor.runs.get(tid, run["run_id"]))["status"] == "running"
    await canceller.runs.cancel(tid, run["run_id"], wait=True)
    assert (await executor.runs.get(tid, run["run_id"]))["status"] == "interrupted"


async def test_join_stream_of_a_run_executing_elsewhere(
    api_only: Server, production: Server
) -> None:
    creator = get_client(url=api_only.url)
    joiner = get_client(url=production.url)
    thread = await creator.threads.create()
    tid = thread["thread_id"]
    run = await creator.runs.create(
        tid, "counter", input={"steps": 20, "delay": 0.02}, stream_mode=["custom"]
    )
    ticks = [
        p.data["tick"]
        async for p in joiner.runs.join_stream(tid, run["run_id"])
        if p.event == "custom"
    ]
    assert ticks == list(range(1, 21))
    out = await creator.runs.join(tid, run["run_id"])
    assert out["count"] == 20


async def test_resume_with_last_event_id_on_another_process_exactly_once(
    api_only: Server, production: Server
) -> None:
    """Read part of a live stream on one process, drop it, resume on the other."""
    client = get_client(url=production.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "sleeper", input={"steps": 40, "delay": 0.01}, stream_mode=["custom"]
    )
    path = f"/threads/{tid}/runs/{run['run_id']}/stream"
    seen: list[int] = []
    last_id = None
    async with httpx.AsyncClient(base_url=production.url, timeout=30) as http:
        async with http.stream("GET", path) as r:
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    last_id = line[4:]
                    seen.append(int(last_id))
                    if len(seen) == 10:
                        break
    async with httpx.AsyncClient(base_url=api_only.url, timeout=30) as http:
        async with http.stream("GET", path, headers={"Last-Event-ID": last_id}) as r:
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    seen.append(int(line[4:]))
    assert seen == list(range(1, 41))


async def test_event_source_reconnect_after_the_end_gets_204(api_only: Server) -> None:
    """A browser's EventSource reconnects when a stream closes; 204 tells it to stop."""
    client = get_client(url=api_only.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"steps": 3}, stream_mode=["updates"])
    await client.runs.join(tid, run["run_id"])
    path = f"/threads/{tid}/runs/{run['run_id']}/stream"
    async with httpx.AsyncClient(base_url=api_only.url, timeout=30) as http:
        first = await http.get(path, headers={"Accept": "text/event-stream"})
        ids = [line[4:] for line in first.text.splitlines() if line.startswith("id: ")]
        assert ids == ["1", "2", "3"]
        again = await http.get(path, headers={"Last-Event-ID": ids[-1]})
        assert again.status_code == 204


async def test_wait_through_one_process_for_a_run_on_another(
    api_only: Server, production: Server
) -> None:
    client = get_client(url=api_only.url)
    results = await asyncio.gather(
        *(client.runs.wait(None, "counter", input={"steps": 2}) for _ in range(20))
    )
    assert all(r["count"] == 2 for r in results)


async def test_many_reconnects_alternating_processes_see_every_event_once(
    api_only: Server, production: Server
) -> None:
    """A client that drops its stream every few events and resumes with Last-Event-ID, on one
    process and then the other, during a long run."""
    client = get_client(url=production.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    total = 150
    run = await client.runs.create(
        tid, "sleeper", input={"steps": total, "delay": 0.01}, stream_mode=["custom"]
    )
    path = f"/threads/{tid}/runs/{run['run_id']}/stream"
    ticks: list[int] = []
    ids: list[int] = []
    last_id: str | None = None
    reconnects = 0
    urls = [production.url, api_only.url]
    async with asyncio.timeout(60):
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            async with httpx.AsyncClient(base_url=urls[reconnects % 2], timeout=30) as http:
                async with http.stream("GET", path, headers=headers) as r:
                    if r.status_code == 204:
                        break
                    got = 0
                    ended = True
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and '"tick"' in line:
                            ticks.append(int(line.split('"tick":')[1].split(",")[0]))
                        elif line.startswith("id: "):
                            last_id = line[4:]
                            ids.append(int(last_id))
                            got += 1
                            if got == 7:
                                ended = False
                                break
            reconnects += 1
            if ended:
                break
    assert ticks == list(range(1, total + 1))
    assert ids == list(range(1, total + 1))
    assert reconnects >= total // 7
