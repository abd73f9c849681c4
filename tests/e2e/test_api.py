"""The LangGraph API through the official `langgraph-sdk`, against the embedded and the
production server alike."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.support import GRAPHS, Server, until

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server):
    return get_client(url=server.url)


async def test_ok_and_info(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        info = (await http.get("/info")).json()
        assert info["flags"]["assistants"] is True
        assert info["storage"] == ("sqlite" if server.mode == "dev" else "postgres")


async def test_assistants(client) -> None:
    found = await client.assistants.search(graph_id="counter")
    assert len(found) == 1
    assistant = found[0]
    assert assistant["graph_id"] == "counter" and assistant["version"] == 1
    by_graph = await client.assistants.get("counter")
    assert by_graph["assistant_id"] == assistant["assistant_id"]
    by_id = await client.assistants.get(assistant["assistant_id"])
    assert by_id == by_graph
    graph = await client.assistants.get_graph("counter")
    assert {n["id"] for n in graph["nodes"]} >= {"__start__", "tick", "__end__"}
    schemas = await client.assistants.get_schemas("counter")
    assert schemas["graph_id"] == "counter"
    assert "count" in schemas["input_schema"]["properties"]
    defaults = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    configured = json.loads(GRAPHS.read_text())["graphs"]
    assert {a["graph_id"] for a in defaults} == set(configured)
    assert len(defaults) == len(configured)
    with pytest.raises(NotFoundError):
        await client.assistants.get("no-such-graph")


async def test_threads_crud(client) -> None:
    thread_id = str(uuid.uuid4())
    made = await client.threads.create(thread_id=thread_id, metadata={"owner": "t1", "n": 1})
    assert made["thread_id"] == thread_id and made["status"] == "idle"
    same = await client.threads.create(thread_id=thread_id, if_exists="do_nothing")
    assert same["metadata"] == {"owner": "t1", "n": 1}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, if_exists="raise")
    patched = await client.threads.update(thread_id, metadata={"n": 2})
    assert patched["metadata"] == {"owner": "t1", "n": 2}
    found = await client.threads.search(metadata={"owner": "t1"})
    assert [t["thread_id"] for t in found] == [thread_id]
    assert await client.threads.search(metadata={"owner": "nobody"}) == []
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {} and state["next"] == [] and state["checkpoint"] is None
    await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


async def test_stream_run_modes_in_order(client) -> None:
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"],
            "counter",
            input={"steps": 3},
            stream_mode=["values", "updates", "custom"],
        )
    ]
    assert parts[0].event == "metadata"
    assert parts[0].data["attempt"] == 1  # its first attempt, as LangGraph's server says
    run_id = parts[0].data["run_id"]
    ticks = [p.data["tick"] for p in parts if p.event == "custom"]
    assert ticks == [1, 2, 3]
    updates = [p.data for p in parts if p.event == "updates"]
    assert [u["tick"]["count"] for u in updates] == [1, 2, 3]
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["count"] == 3
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "success"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["count"] == 3 and state["next"] == []
    after = await client.threads.get(thread["thread_id"])
    assert after["status"] == "idle" and after["values"]["count"] == 3


async def test_wait_returns_final_values(client) -> None:
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "counter", input={"steps": 4})
    assert out["count"] == 4
    # The thread keeps its state: a second run continues from it.
    again = await client.runs.wait(thread["thread_id"], "counter", input={"steps": 6})
    assert again["count"] == 6


async def test_background_run_and_join(client) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "counter", input={"steps": 2})
    assert run["status"] in ("pending", "running", "success")
    assert run["thread_id"] == thread["thread_id"]
    out = await client.runs.join(thread["thread_id"], run["run_id"])
    assert out["count"] == 2
    done = await client.runs.get(thread["thread_id"], run["run_id"])
    assert done["status"] == "success"
    listed = await client.runs.list(thread["thread_id"])
    assert [r["run_id"] for r in listed] == [run["run_id"]]


async def test_agent_error_is_an_error_run(client) -> None:
    thread = await client.threads.create()
    parts = [
        p async for p in client.runs.stream(thread["thread_id"], "boom", input={"messages": []})
    ]
    errors = [p.data for p in parts if p.event == "error"]
    assert errors == [{"error": "ValueError", "message": "the agent failed on purpose"}]
    run_id = parts[0].data["run_id"]
    run = await client.runs.get(thread["thread_id"], run_id)
    assert run["status"] == "error"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"
    waited = await client.runs.wait(
        thread["thread_id"], "boom", input={"messages": []}, raise_error=False
    )
    assert waited["__error__"] == {"error": "ValueError", "message": "the agent failed on purpose"}
    with pytest.raises(Exception, match="the agent failed on purpose"):
        await client.runs.wait(thread["thread_id"], "boom", input={"messages": []})


async def test_stateless_runs(client) -> None:
    out = await client.runs.wait(None, "counter", input={"steps": 2})
    assert out["count"] == 2
    parts = [p async for p in client.runs.stream(None, "counter", input={"steps": 2})]
    assert parts[0].event == "metadata" and parts[0].data["attempt"] == 1
    assert parts[-1].data["count"] == 2


async def test_a_conversation_after_a_stateless_run(client) -> None:
    """A stateless run's thread and a thread made through the API go in with the same columns
    (the embedded store once handed the second the first's statement: a 500)."""
    assert (await client.runs.wait(None, "counter", input={"steps": 1}))["count"] == 1
    for _ in range(2):
        thread = await client.threads.create()
        assert (await client.runs.wait(thread["thread_id"], "counter", input={"steps": 2}))[
            "count"
        ] == 2
        settled = await client.threads.get(thread["thread_id"])
        assert settled["status"] == "idle" and settled["values"]["count"] == 2


async def test_stateless_runs_answer_as_if_every_step_were_saved(client) -> None:
    """A stateless run's state is saved once, when it ends: its interrupts, final values and
    checkpoint events are those of a run that saved every step."""
    stopped = await client.runs.wait(None, "hitl", input={"topic": "owls"})
    assert stopped["draft"] == "a draft about owls" and stopped["log"] == ["write"]
    [pending] = stopped["__interrupt__"]
    assert pending["value"] == {"question": "publish this?", "draft": "a draft about owls"}

    parts = [
        p
        async for p in client.runs.stream(
            None, "counter", input={"steps": 3}, stream_mode=["checkpoints", "values"]
        )
    ]
    checkpoints = [p.data for p in parts if p.event == "checkpoints"]
    ids = [c["config"]["configurable"]["checkpoint_id"] for c in checkpoints]
    assert len(ids) == 5 and len(set(ids)) == 5  # before the input, after it, three ticks
    parents = [(c.get("parent_config") or {}).get("configurable", {}) for c in checkpoints]
    assert [p.get("checkpoint_id") for p in parents[1:]] == ids[:-1]
    assert [c["values"].get("count") for c in checkpoints] == [None, None, 1, 2, 3]
    assert [p.data.get("count") for p in parts if p.event == "values"][-1] == 3


async def test_stateless_thread_goes_unless_kept(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body = {"assistant_id": "counter", "input": {"steps": 3}}
        gone = (await http.post("/runs", json=body)).json()
        kept = (await http.post("/runs", json={**body, "on_completion": "keep"})).json()
        async with asyncio.timeout(15):
            while (await http.get(f"/threads/{gone['thread_id']}")).status_code != 404:
                await asyncio.sleep(0.05)
            while (await http.get(f"/threads/{kept['thread_id']}")).json()["status"] != "idle":
                await asyncio.sleep(0.05)
        state = (await http.get(f"/threads/{kept['thread_id']}/state")).json()
        assert state["values"]["count"] == 3


async def test_a_runs_metadata_gathers_its_assistants_and_threads(client) -> None:
    """As LangGraph's server records it: the assistant's metadata, the thread's, the graph and
    the assistant, and the request's own, which wins."""
    assistant = await client.assistants.create("counter", metadata={"team": "x"})
    try:
        thread = await client.threads.create(metadata={"tm": "1"})
        run = await client.runs.create(
            thread["thread_id"],
            assistant["assistant_id"],
            input={"steps": 1},
            metadata={"via": "y", "team": "mine"},
        )
        expected = {
            "team": "mine",
            "tm": "1",
            "graph_id": "counter",
            "assistant_id": assistant["assistant_id"],
            "via": "y",
        }
        assert run["metadata"] == expected
        await client.runs.join(thread["thread_id"], run["run_id"])
        got = await client.runs.get(thread["thread_id"], run["run_id"])
        assert got["metadata"] == expected
    finally:
        await client.assistants.delete(assistant["assistant_id"])


async def test_messages_tuple_stream(client) -> None:
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"],
            "chat",
            input={"messages": [{"role": "user", "content": "hi"}]},
            stream_mode="messages-tuple",
        )
    ]
    messages = [p.data for p in parts if p.event == "messages"]
    assert messages, [p.event for p in parts]
    chunk, metadata = messages[0]
    text = "".join(m[0]["content"] for m in messages)
    assert text == "hello from the fake model"
    assert metadata["langgraph_node"] == "model"
    assert chunk["type"] in ("AIMessageChunk", "ai")


async def test_messages_and_messages_tuple_together_send_the_tuples(client) -> None:
    """As LangGraph's server answers it: the tuples alone, not the partial messages too."""
    parts = [
        p
        async for p in client.runs.stream(
            None,
            "chat",
            input={"messages": [{"role": "user", "content": "hi"}]},
            stream_mode=["messages", "messages-tuple"],
        )
    ]
    names = {p.event for p in parts}
    assert names == {"metadata", "messages"}, names
    text = "".join(p.data[0]["content"] for p in parts if p.event == "messages")
    assert text == "hello from the fake model"


async def test_subgraph_events_are_namespaced(client) -> None:
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"],
            "nested",
            input={"steps": 1},
            stream_mode=["updates"],
            stream_subgraphs=True,
        )
    ]
    names = [p.event for p in parts]
    assert "updates" in names
    assert any(n.startswith("updates|child:") for n in names), names


async def test_graph_factory(client) -> None:
    out = await client.runs.wait(None, "factory", input={"steps": 2})
    assert out["count"] == 2


async def test_multitask_reject_and_enqueue(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "counter", input={"steps": 20, "delay": 0.05})
    with pytest.raises(ConflictError):
        await client.runs.create(tid, "counter", input={"steps": 1}, multitask_strategy="reject")
    second = await client.runs.create(
        tid, "counter", input={"steps": 22}, multitask_strategy="enqueue"
    )
    await client.runs.join(tid, second["run_id"])
    a = await client.runs.get(tid, first["run_id"])
    b = await client.runs.get(tid, second["run_id"])
    assert a["status"] == b["status"] == "success"
    state = await client.threads.get_state(tid)
    assert state["values"]["count"] == 22  # second continued from the first's state


async def test_concurrent_runs_on_one_thread(client) -> None:
    """Creates racing for one thread: under `reject` one run is taken and the rest refused;
    under `enqueue` all are taken and all run."""
    tid = (await client.threads.create())["thread_id"]

    async def create(strategy: str, graph: str, graph_input: dict) -> dict | None:
        try:
            return await client.runs.create(
                tid, graph, input=graph_input, multitask_strategy=strategy
            )
        except ConflictError:
            return None

    # The run taken lasts until cancelled: none of the racing creates comes after its end,
    # however slowly the machine handles them.
    racing = (create("reject", "sleeper", {"steps": 10_000, "delay": 0.05}) for _ in range(8))
    taken = [r for r in await asyncio.gather(*racing) if r]
    assert len(taken) == 1
    await client.runs.cancel(tid, taken[0]["run_id"], wait=True)
    counting = {"steps": 2, "delay": 0.05}
    queued = await asyncio.gather(*(create("enqueue", "counter", counting) for _ in range(6)))
    for run in queued:
        await client.runs.join(tid, run["run_id"])
    rows = [await client.runs.get(tid, r["run_id"]) for r in queued]
    assert {r["status"] for r in rows} == {"success"}
    assert len(await client.runs.list(tid, limit=100)) == 7
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_multitask_interrupt(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "sleeper", input={"steps": 200, "delay": 0.05})
    await _wait_status(client, tid, first["run_id"], "running")
    second = await client.runs.create(
        tid, "counter", input={"steps": 1, "count": 0}, multitask_strategy="interrupt"
    )
    await client.runs.join(tid, second["run_id"])
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "success"


async def test_multitask_rollback(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "sleeper", input={"steps": 200, "delay": 0.05})
    await _wait_status(client, tid, first["run_id"], "running")
    second = await client.runs.create(
        tid, "counter", input={"steps": 1, "count": 0}, multitask_strategy="rollback"
    )
    await client.runs.join(tid, second["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first["run_id"])
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "success"


async def test_rollback_of_a_running_run_restores_its_thread(client) -> None:
    """The run and its checkpoints go, and the thread is as it was before it: its values,
    its state, idle (where an interrupt would have left it waiting for the rest)."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input={"steps": 1})
    before = await client.threads.get(tid)
    run = await client.runs.create(tid, "sleeper", input={"steps": 500, "delay": 0.02})
    await _wait_status(client, tid, run["run_id"], "running")
    await until(lambda: _state_has(client, tid, steps=500), "the run's first checkpoint")
    await client.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    after = await client.threads.get(tid)
    assert (after["status"], after["values"]) == ("idle", before["values"])
    state = await client.threads.get_state(tid)
    assert (state["values"], state["next"]) == (before["values"], [])


async def _state_has(client, tid: str, **values: object) -> bool:
    state = await client.threads.get_state(tid)
    return all(state["values"].get(k) == v for k, v in values.items())


async def test_cancel_interrupts_a_running_run(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "sleeper", input={"steps": 500, "delay": 0.02})
    # Cancelled before its first checkpoint, the run would leave the thread as it was (idle).
    await until(lambda: _state_has(client, tid, steps=500), "the run's first checkpoint")
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    # The graph stopped with nodes still to run: LangGraph calls that thread interrupted.
    assert (await client.threads.get(tid))["status"] == "interrupted"
    with pytest.raises(NotFoundError):
        await client.runs.cancel(tid, run["run_id"])


async def test_cancel_a_pending_run(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "sleeper", input={"steps": 100, "delay": 0.02})
    queued = await client.runs.create(tid, "counter", input={"steps": 1})
    await client.runs.cancel(tid, queued["run_id"])
    assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"
    await client.runs.cancel(tid, first["run_id"], wait=True)
    assert (await client.threads.get(tid))["status"] in ("idle", "interrupted")


async def test_delete_a_running_run_settles_its_thread(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "sleeper", input={"steps": 500, "delay": 0.02})
    assert (await client.threads.get(tid))["status"] == "busy"
    await _wait_status(client, tid, run["run_id"], "running")
    await client.runs.delete(tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert (await client.threads.get(tid))["status"] != "busy"


async def test_events_debug_and_legacy_messages_modes(client) -> None:
    thread = await client.threads.create()
    body = {"messages": [{"role": "user", "content": "hi"}]}
    events = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "chat", input=body, stream_mode="events"
        )
    ]
    kinds = {p.data["event"] for p in events if p.event == "events"}
    assert {"on_chain_start", "on_chain_end", "on_chat_model_stream"} <= kinds
    debug = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "chat", input=body, stream_mode="debug"
        )
    ]
    assert {p.data["type"] for p in debug if p.event == "debug"} >= {"task", "task_result"}
    legacy = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "chat", input=body, stream_mode="messages"
        )
    ]
    names = [p.event for p in legacy]
    assert "messages/metadata" in names and "messages/partial" in names
    partials = [p.data[0]["content"] for p in legacy if p.event == "messages/partial"]
    assert partials[-1] == "hello from the fake model"


async def test_events_mode_beside_other_modes(client) -> None:
    """With `events`, the other modes asked for still stream, each chunk where the graph made
    it among the callback events, and the root graph's run is named after the graph."""
    modes = ["values", "updates", "custom"]

    async def run(stream_mode: list[str]) -> list:
        thread = await client.threads.create()
        return [
            p
            async for p in client.runs.stream(
                thread["thread_id"], "counter", input={"steps": 2}, stream_mode=stream_mode
            )
        ]

    alone, together = await run(modes), await run([*modes, "events"])
    assert [(p.event, p.data) for p in together if p.event in modes] == [
        (p.event, p.data) for p in alone if p.event in modes
    ]
    assert [p.event for p in together if p.event in modes] == [
        "values", "custom", "updates", "values", "custom", "updates", "values"
    ]  # fmt: skip
    events = [p.data for p in together if p.event == "events"]
    assert (events[0]["event"], events[0]["name"]) == ("on_chain_start", "counter")
    assert (events[-1]["event"], events[-1]["name"]) == ("on_chain_end", "counter")
    # The root's own stream events are the modes' chunks above, not sent twice.
    assert not [e for e in events if e["event"] == "on_chain_stream" and e["name"] == "counter"]
    # A tick's custom event comes while its node runs: after the node's start, before its end.
    order = [
        p.event if p.event != "events" else f"{p.data['event']}:{p.data['name']}" for p in together
    ]
    first_custom = order.index("custom")
    assert order.index("on_chain_start:tick") < first_custom < order.index("on_chain_end:tick")

    thread = await client.threads.create()
    nested = [
        p.event
        async for p in client.runs.stream(
            thread["thread_id"],
            "nested",
            input={"steps": 1},
            stream_mode=["updates", "events"],
            stream_subgraphs=True,
        )
    ]
    assert nested.count("updates") == 1
    assert [e for e in nested if e.startswith("updates|child:")]


async def test_state_updated_at(client) -> None:
    """When a thread's state last changed: its creation, then each run's end and each state
    update; not a change of its metadata. Threads sort by it."""
    tag = str(uuid.uuid4())
    first = await client.threads.create(metadata={"tag": tag})
    tid = first["thread_id"]
    assert first["state_updated_at"] == first["created_at"]
    patched = await client.threads.update(tid, metadata={"more": 1})
    assert patched["state_updated_at"] == first["created_at"] < patched["updated_at"]
    second = await client.threads.create(metadata={"tag": tag}, graph_id="counter")
    await client.runs.wait(tid, "counter", input={"steps": 1})
    after_run = await client.threads.get(tid)
    assert after_run["state_updated_at"] > second["created_at"]
    assert after_run["state_updated_at"] == after_run["updated_at"]

    async def order() -> list[str]:
        found = await client.threads.search(
            metadata={"tag": tag}, sort_by="state_updated_at", sort_order="desc"
        )
        return [t["thread_id"] for t in found]

    assert await order() == [tid, second["thread_id"]]
    await client.threads.update_state(second["thread_id"], {"count": 7}, as_node="tick")
    updated = await client.threads.get(second["thread_id"])
    assert updated["state_updated_at"] > after_run["state_updated_at"]
    assert await order() == [second["thread_id"], tid]


async def test_search_select_and_extract(client) -> None:
    """`select` keeps the fields asked for; `extract` reads paths into each thread's JSON,
    None where a path leads nowhere, and refuses a path outside them."""
    tag = str(uuid.uuid4())
    thread = await client.threads.create(metadata={"tag": tag})
    tid = thread["thread_id"]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    await client.runs.wait(tid, "chat", input=body)
    found = await client.threads.search(
        metadata={"tag": tag},
        select=["thread_id", "status"],
        extract={
            "last": "values.messages[-1].content",
            "first": "values.messages[0].type",
            "tag": "metadata.tag",
            "beyond": "values.messages[5]",
            "nowhere": "values.nope.x",
        },
    )
    assert found == [
        {
            "thread_id": tid,
            "status": "idle",
            "extracted": {
                "last": "hello from the fake model",
                "first": "human",
                "tag": tag,
                "beyond": None,
                "nowhere": None,
            },
        }
    ]
    with pytest.raises(UnprocessableEntityError):
        await client.threads.search(extract={"x": "kwargs.input"})
    with pytest.raises(UnprocessableEntityError):
        await client.threads.search(extract={"x": "values..a"})
    runs = await client.runs.list(tid, select=["run_id", "status"])
    assert [set(r) for r in runs] == [{"run_id", "status"}]
    with pytest.raises(UnprocessableEntityError):
        await client.runs.list(tid, select=["nonsense"])


async def test_delete_run(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"steps": 1})
    await client.runs.join(tid, run["run_id"])
    await client.runs.delete(tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])


async def test_join_stream_resumes_after_last_event_id(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "counter", input={"steps": 8, "delay": 0.02}, stream_mode=["custom"]
    )
    await client.runs.join(tid, run["run_id"])
    everything = [p async for p in client.runs.join_stream(tid, run["run_id"])]
    ticks = [p.data["tick"] for p in everything if p.event == "custom"]
    assert ticks == list(range(1, 9))
    resumed = [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="5")]
    assert [p.data["tick"] for p in resumed if p.event == "custom"] == [6, 7, 8]
    values_only = [
        p async for p in client.runs.join_stream(tid, run["run_id"], stream_mode="values")
    ]
    assert {p.event for p in values_only} <= {"metadata", "values"}
    async with httpx.AsyncClient(base_url=client.http.client.base_url, timeout=30) as http:
        async with http.stream(
            "GET", f"/threads/{tid}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": "3"}
        ) as r:
            body = (await r.aread()).decode()
    ids = [int(line[4:]) for line in body.splitlines() if line.startswith("id: ")]
    assert ids == list(range(4, 9))


async def test_stateless_stream_reconnects_by_run_id(server: Server) -> None:
    """A stateless stream's Location names the run alone, as LangGraph's server does (so the
    SDK takes a clean end for the end of the run), and that Location serves the run's stream,
    resumable from Last-Event-ID."""
    body = {
        "assistant_id": "counter",
        "input": {"steps": 5, "delay": 0.01},
        "stream_mode": ["custom"],
        "on_completion": "keep",
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("POST", "/runs/stream", json=body) as r:
            location = r.headers["location"]
            first = (await r.aread()).decode()
        run_id = r.headers["content-location"].rsplit("/", 1)[-1]
        assert location == f"/runs/{run_id}/stream"
        assert first.count("event: custom") == 5
        async with http.stream("GET", location, headers={"Last-Event-ID": "2"}) as again:
            assert again.status_code == 200
            rest = (await again.aread()).decode()
        assert [int(line[4:]) for line in rest.splitlines() if line.startswith("id: ")] == [
            3,
            4,
            5,
        ]
        missing = await http.get(f"/runs/{uuid.uuid4()}/stream")
        assert missing.status_code == 404 and "detail" in missing.json()


async def test_bad_input_is_a_clear_4xx(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        tid = thread["thread_id"]
        missing = str(uuid.uuid4())
        cases = [
            ("GET", f"/threads/{missing}", None, 404),
            ("GET", "/threads/not-a-uuid", None, 422),
            ("GET", f"/threads/{tid}/runs/{missing}", None, 404),
            ("POST", f"/threads/{missing}/runs", {"assistant_id": "counter"}, 404),
            # A name that is no graph's is a malformed request; an unknown id, not found.
            ("POST", f"/threads/{tid}/runs", {"assistant_id": "nope"}, 422),
            ("POST", "/runs/wait", {"assistant_id": "nope"}, 422),
            ("POST", f"/threads/{tid}/runs", {"assistant_id": missing}, 404),
            ("POST", f"/threads/{tid}/runs", {}, 422),
            ("POST", f"/threads/{tid}/runs", {"assistant_id": "counter", "stream_mode": "x"}, 422),
            (
                "POST",
                f"/threads/{tid}/runs",
                {"assistant_id": "counter", "multitask_strategy": "sometimes"},
                422,
            ),
            ("POST", f"/threads/{tid}/runs/{missing}/cancel", None, 404),
            ("GET", "/assistants/missing", None, 404),
            ("GET", "/assistants/a%00b", None, 404),
            ("DELETE", f"/threads/{missing}", None, 404),
            # What the databases cannot store or compare is refused up front.
            ("POST", "/threads", {"metadata": {"n": 2**64}}, 422),
            ("POST", "/threads", {"metadata": {"a\u0000": 1}}, 422),
            ("POST", "/threads/search", {"metadata": {"a": "x\u0000"}}, 422),
            ("POST", "/threads/search", {"offset": 2**70}, 422),
            ("POST", "/runs", {"assistant_id": "counter", "after_seconds": -1}, 422),
            ("POST", "/runs", {"assistant_id": "a\u0000b"}, 422),
            ("GET", f"/threads/{tid}/runs?offset=99999999999999999999", None, 422),
            ("GET", "/runs?offset=9223372036854775808", None, 422),
        ]
        for method, path, body, status in cases:
            r = await http.request(method, path, json=body)
            assert r.status_code == status, (method, path, r.status_code, r.text)
            assert "detail" in r.json()
        r = await http.post("/runs/stream", json={"assistant_id": "nope"})
        assert "One of the registered graphs: " in r.json()["detail"]
        assert "counter" in r.json()["detail"]
        r = await http.post(
            f"/threads/{tid}/runs",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and "detail" in r.json()
        # The routes that create a run read their request themselves, and refuse as FastAPI
        # does: 422, each error placed under body, header or path.
        run = {"assistant_id": "counter"}
        refused = [
            ("/runs/wait", {"json": {**run, "metadata": {"n": 2**64}}}, ["body"]),
            ("/runs/stream", {"json": {**run, "stream_mode": ["x"]}}, ["body", "stream_mode"]),
            ("/runs", {"json": [run]}, ["body"]),
            ("/runs", {"content": b""}, ["body"]),
            (
                "/runs",
                {"content": b'{"a": NaN', "headers": {"content-type": "application/json"}},
                ["body"],
            ),
            (
                "/runs/wait",
                {
                    "content": b'{"assistant_id": "counter"}',
                    "headers": {"content-type": "text/plain"},
                },
                ["body"],
            ),
            (
                "/runs",
                {"json": run, "headers": {"Idempotency-Key": "k" * 256}},
                ["header", "Idempotency-Key"],
            ),
            ("/threads/not-a-uuid/runs/wait", {"json": run}, ["path", "thread_id"]),
            (f"/threads/{tid}/runs/stream", {"json": {"input": {}}}, ["body", "assistant_id"]),
        ]
        for path, request, loc in refused:
            r = await http.post(path, **request)
            assert r.status_code == 422, (path, r.status_code, r.text)
            assert r.json()["detail"][0]["loc"][: len(loc)] == loc, (path, r.text)
        r = await http.post("/runs/wait", json=run, headers={"Idempotency-Key": "k" * 255})
        assert r.status_code == 200, r.text
        r = await http.get(f"/threads/{tid}/runs/not-a-uuid/join")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "run_id"]
        r = await http.get(f"/threads/{tid}/runs/{missing}/join")
        assert r.status_code == 404 and "detail" in r.json()
        # Odd but storable keys are fine in filters.
        for meta in ({'a"b': 1}, {"a.b": "x"}, {"$": [1, {"x": None}]}):
            r = await http.post("/threads/search", json={"metadata": meta})
            assert r.status_code == 200 and r.json() == [], (meta, r.text)


async def test_unknown_ids_through_the_sdk(client) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(str(uuid.uuid4()), "counter", stream_mode="nonsense")  # type: ignore[arg-type]


async def _wait_status(
    client, thread_id: str, run_id: str, status: str, timeout: float = 15
) -> None:
    async with asyncio.timeout(timeout):
        while (await client.runs.get(thread_id, run_id))["status"] != status:
            await asyncio.sleep(0.02)
