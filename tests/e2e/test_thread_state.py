"""Checkpointed threads through `langgraph-sdk`: human-in-the-loop, state updates, history,
time travel, copy, prune, supersteps and thread TTL, on the embedded and production servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

from tests.support import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server):
    return get_client(url=server.url)


async def _interrupted_thread(client) -> tuple[str, list]:
    thread = await client.threads.create(metadata={"suite": "hitl"})
    tid = thread["thread_id"]
    events = [
        (p.event, p.data)
        async for p in client.runs.stream(
            tid, "hitl", input={"topic": "cats"}, stream_mode=["values", "updates"]
        )
    ]
    return tid, events


async def test_interrupt_leaves_the_thread_interrupted_and_resume_continues(client) -> None:
    tid, events = await _interrupted_thread(client)
    asked = [d["__interrupt__"] for e, d in events if e == "updates" and "__interrupt__" in d]
    assert asked and asked[0][0]["value"] == {
        "question": "publish this?",
        "draft": "a draft about cats",
    }
    # The last values event carries the interrupt too, as LangGraph streams it.
    last_values = [d for e, d in events if e == "values"][-1]
    assert last_values["__interrupt__"][0]["id"] == asked[0][0]["id"]

    runs = await client.runs.list(tid)
    assert runs[0]["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["values"]["log"] == ["write"]
    [(task_id, pending)] = thread["interrupts"].items()
    assert pending[0]["value"]["question"] == "publish this?"

    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"]
    assert state["tasks"][0]["id"] == task_id
    assert state["tasks"][0]["interrupts"][0]["value"]["draft"] == "a draft about cats"
    assert state["interrupts"][0]["id"] == asked[0][0]["id"]

    final = await client.runs.wait(tid, "hitl", command={"resume": "yes"})
    assert final["verdict"] == "yes" and final["log"] == ["write", "review", "publish"]
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    assert (await client.threads.get_state(tid))["next"] == []


async def test_command_update_and_goto(client) -> None:
    tid, _ = await _interrupted_thread(client)
    # LangGraph's semantics: `goto` adds `publish` to the next step, `update` writes state,
    # and `review`, still waiting for an answer, asks again.
    out = await client.runs.wait(
        tid, "hitl", command={"update": {"verdict": "skipped"}, "goto": "publish"}
    )
    assert out["verdict"] == "skipped"
    assert out["__interrupt__"][0]["value"]["question"] == "publish this?"
    assert (await client.threads.get(tid))["status"] == "interrupted"
    final = await client.runs.wait(tid, "hitl", command={"resume": "fine"})
    assert final["log"] == ["write", "publish", "review", "publish"]
    assert "__interrupt__" not in final


async def test_interrupt_before_and_after(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "hitl", input={"topic": "x"}, interrupt_before=["review"])
    assert out["log"] == ["write"]
    assert (await client.threads.get(tid))["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"] and state["interrupts"] == []

    tid2 = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid2, "counter", input={"steps": 3}, interrupt_after=["tick"])
    assert out["count"] == 1
    assert (await client.threads.get_state(tid2))["next"] == ["tick"]
    # Resuming with no input goes on from where it stopped, to the end this time.
    out = await client.runs.wait(tid2, "counter", input=None)
    assert out["count"] == 3


async def test_update_state_as_node_and_errors(client) -> None:
    tid, _ = await _interrupted_thread(client)
    written = await client.threads.update_state(tid, {"topic": "dogs"})
    assert written["checkpoint"]["thread_id"] == tid
    assert written["checkpoint_id"] == written["checkpoint"]["checkpoint_id"]
    state = await client.threads.get_state(tid)
    assert state["values"]["topic"] == "dogs"
    assert state["checkpoint"]["checkpoint_id"] == written["checkpoint_id"]
    assert state["metadata"]["source"] == "update"
    assert (await client.threads.get(tid))["values"]["topic"] == "dogs"

    # As if `review` had run: the graph moves on to `publish`, no interrupt pending.
    await client.threads.update_state(tid, {"verdict": "by hand"}, as_node="review")
    state = await client.threads.get_state(tid)
    assert state["next"] == ["publish"] and state["values"]["verdict"] == "by hand"
    thread = await client.threads.get(tid)
    assert thread["interrupts"] == {} and thread["status"] == "interrupted"
    final = await client.runs.wait(tid, "hitl", input=None)
    assert final["log"] == ["write", "publish"]

    with pytest.raises(BadRequestError, match="does not exist"):
        await client.threads.update_state(tid, {"topic": "x"}, as_node="nope")
    bare = (await client.threads.create())["thread_id"]
    with pytest.raises(BadRequestError, match="no assigned graph ID"):
        await client.threads.update_state(bare, {"a": 1})
    with pytest.raises(NotFoundError):
        await client.threads.update_state(str(uuid.uuid4()), {"a": 1})


async def test_update_state_on_a_busy_thread_is_a_conflict(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "sleeper", input={"steps": 200, "delay": 0.02})
    deadline = time.monotonic() + 20
    while (await client.runs.get(tid, run["run_id"]))["status"] != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    with pytest.raises(ConflictError):
        await client.threads.update_state(tid, {"count": 5})
    await client.runs.cancel(tid, run["run_id"], wait=True)


async def test_history_limit_before_metadata_and_time_travel(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "counter", input={"steps": 3})
    history = await client.threads.get_history(tid, limit=100)
    # input, then one checkpoint per tick.
    assert len(history) == 5
    assert [h["values"].get("count") for h in history[:4]] == [3, 2, 1, None]
    assert len(await client.threads.get_history(tid, limit=2)) == 2
    loops = await client.threads.get_history(tid, limit=100, metadata={"source": "loop"})
    assert {h["metadata"]["source"] for h in loops} == {"loop"} and len(loops) == 4
    older = await client.threads.get_history(tid, limit=10, before=history[1]["checkpoint"])
    assert [h["checkpoint_id"] for h in older] == [h["checkpoint_id"] for h in history[2:]]

    # Time travel: run again from the checkpoint where count was 1.
    at_one = next(h for h in history if h["values"].get("count") == 1)
    again = await client.runs.wait(
        tid, "counter", input=None, checkpoint_id=at_one["checkpoint_id"]
    )
    assert again["count"] == 3
    state = await client.threads.get_state(tid)
    assert state["parent_checkpoint"]["checkpoint_id"] != history[0]["checkpoint_id"]
    past = await client.threads.get_state(tid, checkpoint_id=at_one["checkpoint_id"])
    assert past["values"]["count"] == 1
    past = await client.threads.get_state(
        tid, checkpoint={"checkpoint_id": at_one["checkpoint_id"]}
    )
    assert past["values"]["count"] == 1


async def test_state_of_subgraphs(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "nested", input={"count": 0}, interrupt_before=["child"])
    shallow = await client.threads.get_state(tid)
    assert shallow["next"] == ["child"]
    deep = await client.threads.get_state(tid, subgraphs=True)
    assert deep["tasks"][0]["name"] == "child"


async def test_copy_and_prune(client) -> None:
    tid, _ = await _interrupted_thread(client)
    copied = await client.threads.copy(tid)
    assert copied["thread_id"] != tid
    assert copied["metadata"]["suite"] == "hitl"
    original = await client.threads.get_history(tid, limit=100)
    twin = await client.threads.get_history(copied["thread_id"], limit=100)
    assert [h["values"] for h in twin] == [h["values"] for h in original]
    # The copy goes its own way: resuming it leaves the original waiting.
    final = await client.runs.wait(copied["thread_id"], "hitl", command={"resume": "ok"})
    assert final["log"] == ["write", "review", "publish"]
    assert (await client.threads.get(tid))["status"] == "interrupted"

    assert await client.threads.prune([copied["thread_id"]], strategy="keep_latest") == {
        "pruned_count": 1
    }
    assert len(await client.threads.get_history(copied["thread_id"], limit=100)) == 1
    assert (await client.threads.get_state(copied["thread_id"]))["values"]["verdict"] == "ok"

    missing = str(uuid.uuid4())
    assert await client.threads.prune([copied["thread_id"], missing]) == {"pruned_count": 1}
    with pytest.raises(NotFoundError):
        await client.threads.get(copied["thread_id"])
    with pytest.raises(NotFoundError):
        await client.threads.copy(missing)


async def test_thread_created_with_supersteps_and_graph_id(client) -> None:
    thread = await client.threads.create(
        graph_id="counter",
        supersteps=[
            {"updates": [{"values": {"count": 10, "steps": 12}, "as_node": "__input__"}]},
            {"updates": [{"values": {"count": 11}, "as_node": "tick"}]},
        ],
    )
    assert thread["metadata"]["graph_id"] == "counter"
    # What LangGraph's bulk update leaves: the last step's values, nothing left to run.
    assert thread["values"] == {"count": 11} and thread["status"] == "idle"
    history = await client.threads.get_history(thread["thread_id"], limit=10)
    assert len(history) >= 2 and history[0]["metadata"]["source"] == "update"
    out = await client.runs.wait(thread["thread_id"], "counter", input={"steps": 12})
    assert out["count"] == 12


async def test_thread_search_shows_values_and_interrupts(client) -> None:
    tid, _ = await _interrupted_thread(client)
    found = await client.threads.search(metadata={"suite": "hitl"}, status="interrupted", limit=100)
    mine = next(t for t in found if t["thread_id"] == tid)
    assert mine["values"]["draft"] == "a draft about cats"
    assert list(mine["interrupts"].values())[0][0]["value"]["question"] == "publish this?"


async def test_bad_state_requests_are_4xx(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        for path, body in (
            (f"/threads/{tid}/history", {"limit": 0}),
            (f"/threads/{tid}/history", {"before": 5}),
            (f"/threads/{tid}/state", {"values": "not a dict"}),
            ("/threads/prune", {"thread_ids": [tid], "strategy": "sometimes"}),
            ("/threads", {"ttl": -1}),
            ("/threads", {"supersteps": [{"updates": []}]}),
        ):
            r = await http.post(path, json=body)
            assert r.status_code == 422, (path, body, r.text)
            assert "detail" in r.json()
        r = await http.post("/threads", json={"graph_id": "no-such-graph"})
        assert r.status_code == 404


@pytest.fixture(scope="module")
def quick_sweep() -> Iterator[Server]:
    """The sweeper runs every lease / 3 seconds: a short lease makes TTL expiry quick."""
    with Server("dev", env={"BG_JOB_LEASE_SECS": "3", "BG_JOB_HEARTBEAT_SECS": "1"}) as server:
        yield server


async def test_thread_ttl_deletes_an_idle_thread(quick_sweep: Server) -> None:
    client = get_client(url=quick_sweep.url)
    doomed = await client.threads.create(ttl={"ttl": 0.02, "strategy": "delete"})  # 1.2 s
    kept = await client.threads.create(ttl=60)
    deadline = time.monotonic() + 20
    while True:
        try:
            await client.threads.get(doomed["thread_id"])
        except NotFoundError:
            break
        assert time.monotonic() < deadline, "the thread outlived its TTL"
        await asyncio.sleep(0.2)
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]


async def _collect(
    client, tid: str, n_runs: int, attached: asyncio.Event | None = None, **kwargs
) -> list:
    """A thread stream's events until `n_runs` runs are done. `attached` is set once the
    response has started: from then on, every run created reaches this follower."""
    seen, done = [], 0
    if attached is None:
        parts = await client.threads.join_stream(tid, **kwargs)
    else:  # what join_stream does, with a hook on the response
        parts = client.http.stream(
            f"/threads/{tid}/stream",
            "GET",
            params={"stream_mode": "run_modes"},
            on_response=lambda _: attached.set(),
        )
    async for part in parts:
        seen.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            done += 1
            if done == n_runs:
                break
    return seen


async def test_thread_stream_follows_every_run_and_resumes(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    attached = asyncio.Event()
    listener = asyncio.create_task(_collect(client, tid, 2, attached))
    await asyncio.wait_for(attached.wait(), 30)
    first = await client.runs.create(
        tid, "counter", input={"steps": 2, "delay": 0.05}, stream_mode=["values", "custom"]
    )
    second = await client.runs.create(tid, "counter", input={"steps": 3})
    seen = await asyncio.wait_for(listener, 30)
    starts = [p.data["run_id"] for p in seen if p.event == "metadata" and "attempt" in p.data]
    assert starts == [first["run_id"], second["run_id"]]
    assert [p.data["tick"] for p in seen if p.event == "custom"] == [1, 2]
    assert [p.data.get("count") for p in seen if p.event == "values"][-1] == 3
    ids = [p.id for p in seen]
    assert len(set(ids)) == len(ids)

    # Reconnect from the middle of the first run: the rest, exactly once, in order.
    cut = next(i for i, p in enumerate(seen) if p.event == "custom")
    rest = await _collect(client, tid, 2, last_event_id=seen[cut].id)
    assert [(p.event, p.data) for p in rest] == [(p.event, p.data) for p in seen[cut + 1 :]]

    # A new follower starts at the runs in flight (here a delayed one), not at past runs.
    third = await client.runs.create(tid, "counter", input={"steps": 4}, after_seconds=0.5)
    lifecycle = await asyncio.wait_for(_collect(client, tid, 1, stream_mode="lifecycle"), 30)
    assert [p.event for p in lifecycle] == ["metadata", "metadata"]
    assert lifecycle[0].data["run_id"] == third["run_id"]
