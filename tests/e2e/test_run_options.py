"""Run options beyond create-and-stream, through `langgraph-sdk`: delayed runs, webhooks,
batches, bulk cancel, metadata search, priority, `if_not_exists`, `on_completion`,
`on_disconnect`, config/context/metadata merging."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.support import Server, until

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server):
    return get_client(url=server.url)


async def test_after_seconds_delays_the_start(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "counter", input={"steps": 1}, after_seconds=1.5)
    created = datetime.fromisoformat(run["created_at"])
    # Still waiting well before the delay is over.
    await asyncio.sleep(0.5)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
    out = await client.runs.join(tid, run["run_id"])
    assert out["count"] == 1
    state = await client.threads.get_state(tid)
    started = datetime.fromisoformat(state["created_at"])
    assert (started - created).total_seconds() >= 1.4


async def test_a_delayed_run_holds_back_later_runs_of_its_thread(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "counter", input={"steps": 1}, after_seconds=1)
    second = await client.runs.create(tid, "counter", input={"steps": 2, "count": 0})
    out = await client.runs.join(tid, second["run_id"])
    assert out["count"] == 2
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"


class _Receiver:
    """A webhook endpoint on a spare port: fails the first `failures` deliveries with 503."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver(failures=2)
    yield r
    r.close()


async def test_webhook_posts_the_finished_run_with_retries(client, receiver: _Receiver) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid, "counter", input={"steps": 2}, webhook=receiver.url, metadata={"why": "hook"}
    )
    await client.runs.join(tid, run["run_id"])
    await until(lambda: asyncio.sleep(0, receiver.bodies), "the webhook", timeout=30)
    [body] = receiver.bodies
    assert receiver.attempts == 3  # two 503s, then delivered
    assert body["run_id"] == run["run_id"] and body["thread_id"] == tid
    assert body["status"] == "success" and body["values"]["count"] == 2
    assert body["metadata"]["why"] == "hook" and body["webhook_sent_at"]


async def test_webhook_of_a_failed_run_carries_the_error(client) -> None:
    hook = _Receiver()
    try:
        out = await client.runs.wait(None, "boom", input={}, webhook=hook.url, raise_error=False)
        assert "__error__" in out
        await until(lambda: asyncio.sleep(0, hook.bodies), "the webhook", timeout=30)
        assert hook.bodies[0]["status"] == "error"
        assert "on purpose" in hook.bodies[0]["error"]
    finally:
        hook.close()


async def test_batch_of_stateless_runs(client) -> None:
    tag = str(uuid.uuid4())
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "counter", "input": {"steps": n}, "metadata": {"batch": tag}}
            for n in (1, 2, 3)
        ]
    )
    assert len(runs) == 3 and len({r["run_id"] for r in runs}) == 3
    for r in runs:
        assert r["metadata"]["batch"] == tag and r["metadata"]["graph_id"] == "counter"
        assert (await client.runs.join(r["thread_id"], r["run_id"]))["count"] in (1, 2, 3)


async def test_bulk_cancel_by_ids_thread_and_status(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    long = {"steps": 500, "delay": 0.02}
    running = await client.runs.create(tid, "sleeper", input=long)
    queued = await client.runs.create(tid, "sleeper", input=long, multitask_strategy="enqueue")
    await client.runs.cancel_many(thread_id=tid)
    for r in (running, queued):
        final = await until(
            lambda r=r: _terminal(client, tid, r["run_id"]), "cancelled runs", timeout=20
        )
        assert final["status"] == "interrupted"

    tid2 = (await client.threads.create())["thread_id"]
    one = await client.runs.create(tid2, "sleeper", input=long)
    await client.runs.cancel_many(run_ids=[one["run_id"]], action="interrupt")
    final = await until(lambda: _terminal(client, tid2, one["run_id"]), "cancel by id", timeout=20)
    assert final["status"] == "interrupted"

    with pytest.raises(NotFoundError):
        await client.runs.cancel_many(run_ids=[str(uuid.uuid4())])


async def _terminal(client, tid: str, run_id: str) -> dict[str, Any] | None:
    row = await client.runs.get(tid, run_id)
    return row if row["status"] not in ("pending", "running") else None


async def test_runs_searched_by_metadata(server: Server, client) -> None:
    tag = str(uuid.uuid4())
    tid = (await client.threads.create())["thread_id"]
    mine = await client.runs.create(tid, "counter", input={"steps": 1}, metadata={"tag": tag})
    await client.runs.create(tid, "counter", input={"steps": 1}, metadata={"tag": "other"})
    async with httpx.AsyncClient(base_url=server.url) as http:
        found = (await http.get("/runs", params={"metadata": json.dumps({"tag": tag})})).json()
        assert [r["run_id"] for r in found] == [mine["run_id"]]
        found = (await http.post("/runs/search", json={"metadata": {"tag": tag}})).json()
        assert [r["run_id"] for r in found] == [mine["run_id"]]
        bad = await http.get("/runs", params={"metadata": "[1"})
        assert bad.status_code == 422


async def test_if_not_exists_and_on_completion(client) -> None:
    tid = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(tid, "counter", input={"steps": 1})
    run = await client.runs.create(tid, "counter", input={"steps": 1}, if_not_exists="create")
    assert (await client.runs.join(tid, run["run_id"]))["count"] == 1
    assert (await client.threads.get(tid))["metadata"]["graph_id"] == "counter"

    kept = await client.runs.create(None, "counter", input={"steps": 1}, on_completion="keep")
    await client.runs.join(kept["thread_id"], kept["run_id"])
    assert (await client.threads.get(kept["thread_id"]))["values"]["count"] == 1
    gone = await client.runs.create(None, "counter", input={"steps": 1})
    await client.runs.join(gone["thread_id"], gone["run_id"])

    async def deleted() -> bool:
        try:
            await client.threads.get(gone["thread_id"])
        except NotFoundError:
            return True
        return False

    await until(deleted, "the temporary thread to go", timeout=20)


async def test_on_disconnect_cancel_stops_the_run(server: Server, client) -> None:
    tid = (await client.threads.create())["thread_id"]
    body = {
        "assistant_id": "sleeper",
        "input": {"steps": 500, "delay": 0.02},
        "stream_mode": ["custom"],
        "on_disconnect": "cancel",
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as r:
            async for line in r.aiter_lines():
                if '"tick"' in line:
                    break
    runs = await client.runs.list(tid)
    final = await until(lambda: _terminal(client, tid, runs[0]["run_id"]), "the cancel", timeout=20)
    assert final["status"] == "interrupted"


async def test_priority_jumps_the_queue(server: Server) -> None:
    """With every worker busy, a high-priority run created last is claimed first."""
    client = get_client(url=server.url)
    blockers = [
        await client.runs.create(None, "sleeper", input={"steps": 100, "delay": 0.02})
        for _ in range(12)
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        low = [
            (await http.post("/runs", json={"assistant_id": "counter", "input": {"steps": 1}}))
            for _ in range(6)
        ]
        high = await http.post(
            "/runs", json={"assistant_id": "counter", "input": {"steps": 1}, "priority": 10}
        )
        assert high.status_code == 200
        rejected = await http.post("/runs", json={"assistant_id": "counter", "priority": 10**6})
        assert rejected.status_code == 422
    high_run = high.json()
    low_runs = [r.json() for r in low]
    for r in [*blockers, *low_runs, high_run]:
        await client.runs.join(r["thread_id"], r["run_id"])

    async with httpx.AsyncClient(base_url=server.url) as http:
        listed = (await http.get("/runs", params={"limit": 1000})).json()
    order = [r["run_id"] for r in sorted(listed, key=lambda r: r.get("started_at") or "")]
    ours = [r["run_id"] for r in low_runs] + [high_run["run_id"]]
    claimed = [run_id for run_id in order if run_id in ours]
    assert claimed[0] == high_run["run_id"], claimed


async def test_assistant_config_context_and_metadata_reach_the_run(client) -> None:
    tid = (await client.threads.create(metadata={"owner": "team-a"}))["thread_id"]
    run = await client.runs.create(
        tid,
        "counter",
        input={"steps": 1},
        metadata={"purpose": "merge"},
        config={"configurable": {"user": "u1"}, "tags": ["t1"]},
    )
    await client.runs.join(tid, run["run_id"])
    state = await client.threads.get_state(tid)
    meta = state["metadata"]
    # Thread metadata, run metadata and ids all land in the checkpoint metadata.
    assert meta["owner"] == "team-a" and meta["purpose"] == "merge"
    assert meta["run_id"] == run["run_id"] and meta["graph_id"] == "counter"
    assert (await client.runs.get(tid, run["run_id"]))["kwargs"]["config"]["configurable"][
        "user"
    ] == "u1"
