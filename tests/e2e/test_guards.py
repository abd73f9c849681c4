"""Input and abuse guards: API keys, CORS, body size, backpressure, idempotency; and the
operator's tools for dead runs and opt-in retries."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support import BIN, REDIS_URL, Server

pytestmark = pytest.mark.e2e

KEY = "test-key-123"


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    env = {
        "RUNYARD_API_KEYS": f"other-key,{KEY}",
        "CORS_ALLOW_ORIGINS": "https://app.example",
        "MAX_REQUEST_BODY_BYTES": "4096",
    }
    with Server("dev", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def api_only_capped() -> Iterator[Server]:
    """Runs nothing (N_JOBS_PER_WORKER=0), so pending runs pile up against the cap."""
    with Server("dev", env={"N_JOBS_PER_WORKER": "0", "MAX_PENDING_RUNS": "3"}) as server:
        yield server


async def test_api_keys_guard_every_route_but_ok(guarded: Server) -> None:
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as http:
        assert (await http.get("/ok")).status_code == 200
        for path in ("/info", "/ready", "/threads/" + str(uuid.uuid4())):
            r = await http.get(path)
            assert r.status_code == 401 and "API key" in r.json()["detail"], path
        assert (await http.get("/info", headers={"x-api-key": "wrong"})).status_code == 401
        assert (await http.get("/info", headers={"x-api-key": KEY})).status_code == 200
        # What MCP clients send.
        bearer = {"authorization": f"Bearer {KEY}"}
        assert (await http.get("/info", headers=bearer)).status_code == 200
        for wrong in ("Bearer wrong", f"Basic {KEY}", "Bearer", KEY):
            r = await http.get("/info", headers={"authorization": wrong})
            assert r.status_code == 401, wrong
        assert (await http.post("/mcp", json={})).status_code == 401
        # A listed origin may call the MCP endpoint; another may not (DNS rebinding).
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        mcp_headers = {**bearer, "accept": "application/json, text/event-stream"}
        for origin, status in (("https://app.example", 200), ("https://other.example", 403)):
            r = await http.post("/mcp", json=ping, headers={**mcp_headers, "origin": origin})
            assert r.status_code == status, (origin, r.text)
    client = get_client(url=guarded.url, api_key=KEY)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "counter", input={"steps": 2})
    await client.runs.join(thread["thread_id"], run["run_id"])
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as http:
        # EventSource cannot send headers: the key may come as a query parameter.
        path = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream"
        assert (await http.get(path)).status_code == 401
        r = await http.get(path, params={"api_key": KEY})
        assert r.status_code == 200 and "event: metadata" in r.text


async def test_cors_preflight_and_headers(guarded: Server) -> None:
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as http:
        r = await http.options(
            "/threads",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key,content-type",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = await http.get("/info", headers={"Origin": "https://evil.example", "x-api-key": KEY})
        assert "access-control-allow-origin" not in r.headers


async def test_oversized_bodies_get_413(guarded: Server) -> None:
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as http:
        big = {"assistant_id": "counter", "input": {"blob": "x" * 10_000}}
        r = await http.post("/runs", json=big, headers={"x-api-key": KEY})
        assert r.status_code == 413 and "larger than 4096" in r.json()["detail"]


async def test_chunked_bodies_are_counted(guarded: Server) -> None:
    """Without a Content-Length the body is counted as it arrives."""

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    headers = {"x-api-key": KEY, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as http:
        big = json.dumps({"assistant_id": "counter", "input": {"blob": "x" * 10_000}}).encode()
        r = await http.post("/runs", content=chunks(big), headers=headers)
        assert r.request.headers["transfer-encoding"] == "chunked"
        assert r.status_code == 413 and "larger than 4096" in r.json()["detail"], r.text
        small = json.dumps({"assistant_id": "counter", "input": {"steps": 1}}).encode()
        r = await http.post("/runs", content=chunks(small), headers=headers)
        assert r.status_code == 200, r.text


async def test_backpressure_answers_503_with_retry_after(api_only_capped: Server) -> None:
    async with httpx.AsyncClient(base_url=api_only_capped.url, timeout=30) as http:
        body = {"assistant_id": "counter", "input": {"steps": 1}}
        statuses = []
        for _ in range(3):
            statuses.append((await http.post("/runs", json=body)).status_code)
        assert statuses == [200, 200, 200]
        async with asyncio.timeout(10):
            while True:  # the count is cached for half a second per process
                r = await http.post("/runs", json=body)
                if r.status_code == 503:
                    break
                await asyncio.sleep(0.1)
        assert int(r.headers["retry-after"]) > 0 and "MAX_PENDING_RUNS" in r.json()["detail"]


async def test_idempotency_key_returns_the_same_run(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        body = {"assistant_id": "counter", "input": {"steps": 1}}
        path = f"/threads/{thread['thread_id']}/runs"
        first, second = await asyncio.gather(
            http.post(path, json=body, headers=key), http.post(path, json=body, headers=key)
        )
        assert first.status_code == second.status_code == 200
        assert first.json()["run_id"] == second.json()["run_id"]
        listed = (await http.get(path)).json()
        assert len(listed) == 1
        other = await http.post(path, json=body, headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
        assert other.json()["run_id"] != first.json()["run_id"]


async def test_dead_runs_are_listed_and_can_be_requeued(server: Server) -> None:
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "boom", input={"messages": []})
    await client.runs.join(tid, run["run_id"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        dead = (await http.get("/runs", params={"status": "error", "limit": 1000})).json()
        assert run["run_id"] in [r["run_id"] for r in dead]
        entry = next(r for r in dead if r["run_id"] == run["run_id"])
        assert entry["error"]["error"] == "ValueError"
        r = await http.post(f"/runs/{run['run_id']}/requeue")
        assert r.status_code == 200 and r.json()["status"] == "pending"
        again = await http.post(f"/runs/{run['run_id']}/requeue")
        assert again.status_code in (200, 409)
        ok_run = await client.runs.create(tid, "counter", input={"steps": 1})
        await client.runs.join(tid, ok_run["run_id"])
        r = await http.post(f"/runs/{ok_run['run_id']}/requeue")
        assert r.status_code == 409
    await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "error"


async def test_opt_in_retries_with_backoff(server: Server) -> None:
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    retry = {"max_attempts": 3, "initial_delay": 0.1, "backoff_factor": 2, "max_delay": 1}
    run = await client.runs.create(
        tid, "boom", input={"messages": []}, config={"configurable": {"retry": retry}}
    )
    out = await client.runs.join(tid, run["run_id"])
    assert out["__error__"]["error"] == "ValueError"
    final = await client.runs.get(tid, run["run_id"])
    assert final["status"] == "error"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        listed = (await http.get("/runs", params={"status": "error", "limit": 1000})).json()
    entry = next(r for r in listed if r["run_id"] == run["run_id"])
    assert entry["attempt"] == 3  # tried three times, then gave up


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runyard"), *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_cli_lists_and_requeues_dead_runs(
    production: Server, pg_uri: str, redis_key_prefix: str
) -> None:
    client = get_client(url=production.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "boom", input={"messages": []})
    await client.runs.join(tid, run["run_id"])
    env = {
        **os.environ,
        "DATABASE_URI": pg_uri,
        "REDIS_URI": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_key_prefix,
    }
    listing = await asyncio.to_thread(
        _cli, env, "runs", "list", "--status", "error", "--limit", "1000"
    )
    assert listing.returncode == 0, listing.stderr
    assert run["run_id"] in listing.stdout and "the agent failed on purpose" in listing.stdout
    requeued = await asyncio.to_thread(_cli, env, "runs", "requeue", run["run_id"])
    assert requeued.returncode == 0 and "pending again" in requeued.stdout, requeued.stderr
    await client.runs.join(tid, run["run_id"])
    async with httpx.AsyncClient(base_url=production.url, timeout=30) as http:
        entry = next(
            r
            for r in (await http.get("/runs", params={"status": "error", "limit": 1000})).json()
            if r["run_id"] == run["run_id"]
        )
    assert entry["attempt"] == 1  # attempts start over after a requeue
    missing = await asyncio.to_thread(_cli, env, "runs", "requeue", str(uuid.uuid4()))
    assert missing.returncode != 0 and "not found" in missing.stderr
