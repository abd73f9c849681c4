"""Settings that bound a run, on a server of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client

from tests.support import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_timeout_server() -> Iterator[Server]:
    with Server("dev", env={"BG_JOB_TIMEOUT_SECS": "0.5"}) as server:
        yield server


async def test_an_overlong_run_ends_as_timeout(short_timeout_server: Server) -> None:
    client = get_client(url=short_timeout_server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid, "sleeper", input={"steps": 1000, "delay": 0.01}, stream_mode="custom"
        )
    ]
    errors = [p.data for p in parts if p.event == "error"]
    assert errors and errors[0]["error"] == "TimeoutError"
    run = (await client.runs.list(tid))[0]
    assert run["status"] == "timeout"
    assert (await client.threads.get(tid))["status"] == "error"
    # A run within the limit is unaffected.
    assert (await client.runs.wait(tid, "counter", input={"steps": 2, "count": 0}))["count"] == 2
