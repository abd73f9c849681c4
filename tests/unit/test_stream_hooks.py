"""The stream hooks (`app.agents.stream_hooks`) against LangGraph's own `astream` iterator:
every graph shape and stream mode the API offers must give the same events, in the same
order, either way. The hooks are LangGraph internals, so this is what catches a LangGraph
release that changes them."""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import re
import threading
import time
import uuid
from typing import Annotated, Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_store, get_stream_writer
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.store.memory import InMemoryStore
from langgraph.types import Send, interrupt
from typing_extensions import TypedDict

from app import serde
from app.agents import executor
from app.agents.executor import GraphCall, run_graph
from app.agents.hooks_check import check_hooks
from app.agents.stream_hooks import HOOKS_AVAILABLE

pytestmark = pytest.mark.skipif(not HOOKS_AVAILABLE, reason="this LangGraph has no stream hooks")


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    items: list[int]
    answer: Any


def _model(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)]))


async def talk(state: State) -> State:
    writer = get_stream_writer()
    writer({"before": "model"})
    reply = await _model("tokens one by one from the fake model").ainvoke(state["messages"])
    writer({"after": "model"})
    return {"messages": [reply], "log": ["talk"]}


def sync_emit(state: State) -> State:
    """A sync node: LangGraph runs it in a thread, and its writer is called from there."""
    writer = get_stream_writer()
    for i in range(5):
        writer({"sync": i})
    reply = _model("a sync model answers").invoke(state.get("messages", []))
    return {"messages": [reply], "log": ["sync"]}


async def fan_out_item(state: dict[str, Any]) -> State:
    writer = get_stream_writer()
    for i in range(3):
        await asyncio.sleep(0)  # the tasks take turns, in a fixed order
        writer({"item": state["item"], "i": i})
    return {"log": [f"item {state['item']}"]}


def _fan(state: State) -> list[Send]:
    return [Send("item", {"item": i}) for i in state.get("items", [1, 2, 3])]


async def ask(state: State) -> State:
    get_stream_writer()({"asking": True})
    answer = interrupt({"question": "go on?"})
    return {"answer": answer, "log": ["ask"]}


async def fail_after_events(state: State) -> State:
    writer = get_stream_writer()
    writer({"n": 1})
    writer({"n": 2})
    raise ValueError("failed after two events")


async def settings(state: State, runtime: Runtime) -> State:
    """What the run's runtime holds: the hooks give LangGraph a runtime of their own."""
    await get_store().aput(("notes",), "seen", {"context": runtime.context})
    item = await runtime.store.aget(("notes",), "seen")
    info = runtime.server_info
    get_stream_writer()(
        {"context": runtime.context, "stored": item.value, "graph_id": info and info.graph_id}
    )
    return {"answer": runtime.context}


def _single(name: str, node: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node(name, node)
    graph.add_edge(START, name)
    graph.add_edge(name, END)
    return graph


def _chain(*nodes: tuple[str, Any]) -> Any:
    graph = StateGraph(State)
    previous = START
    for name, node in nodes:
        graph.add_node(name, node)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph


def _fan_out() -> Any:
    graph = StateGraph(State)
    graph.add_node("item", fan_out_item)
    graph.add_node("talk", talk)
    graph.add_conditional_edges(START, _fan, ["item"])
    graph.add_edge("item", "talk")
    graph.add_edge("talk", END)
    return graph


def _nested() -> Any:
    inner = _chain(("talk", talk), ("sync", sync_emit)).compile()
    deeper = _single("inner", inner).compile()
    return _chain(("first", talk), ("child", deeper))


_called_inside = _chain(("talk", talk), ("sync", sync_emit)).compile()


async def calls_a_graph(state: State) -> State:
    """A graph run from inside a node's code, not added as a node."""
    result = await _called_inside.ainvoke({"messages": state["messages"]})
    get_stream_writer()({"inner log": result["log"]})
    return {"messages": result["messages"][-1:], "log": ["called"]}


class _LoopModel(GenericFakeChatModel):
    """A fake chat model that streams its tokens on the event loop, a turn each (the stock
    one streams from a thread): parallel nodes then interleave the same way every run."""

    async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):  # type: ignore[override]
        for chunk in self._stream(messages, stop=stop, run_manager=None, **kw):
            await asyncio.sleep(0)
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


async def writes_between_turns(state: State) -> State:
    for i in range(4):
        await asyncio.sleep(0)
        get_stream_writer()({"turn": i})
    return {"log": ["turns"]}


async def ends_at_once(state: State) -> State:
    return {"log": ["at once"]}


async def streams_tokens(state: State) -> State:
    model = _LoopModel(messages=iter([AIMessage(content="one token a turn")]))
    return {"messages": [await model.ainvoke(state["messages"])], "log": ["tokens"]}


def _side_by_side() -> Any:
    """Nodes of one step ending on different turns of the event loop, between the custom
    events and tokens of the others: the order `astream` gives them is kept."""
    graph = StateGraph(State)
    for name, node in (("turns", writes_between_turns), ("once", ends_at_once)):
        graph.add_node(name, node)
        graph.add_edge(START, name)
        graph.add_edge(name, END)
    graph.add_node("tokens", streams_tokens)
    graph.add_edge(START, "tokens")
    graph.add_edge("tokens", END)
    return graph


_own_thread_graph = _single("talk", talk).compile(checkpointer=InMemorySaver())


async def calls_a_graph_with_its_own_thread(state: State) -> State:
    """A graph run from a node with a config of its own: not a subgraph, and its model's
    tokens are not the run's."""
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    result = await _own_thread_graph.ainvoke({"messages": state["messages"]}, config)
    return {"messages": [AIMessage(content=result["messages"][-1].content, id="relayed-1")]}


class _Functional:
    """The functional API's graph (an `entrypoint` with `task`s), compiled like the others."""

    def compile(self, checkpointer: Any, store: Any) -> Any:
        @task
        async def double(x: int) -> int:
            get_stream_writer()({"doubling": x})
            return 2 * x

        @entrypoint(checkpointer=checkpointer, store=store)
        async def workflow(inputs: dict[str, Any], *, previous: Any = None) -> Any:
            doubled = await asyncio.gather(*(double(i) for i in inputs.get("items", [])))
            get_stream_writer()({"previous": previous})
            return entrypoint.final(value=doubled, save=sum(doubled))

        return workflow


GRAPHS = {
    "functional": _Functional,
    "invoked": lambda: _single("calls", calls_a_graph),
    "side_by_side": _side_by_side,
    "own_thread": lambda: _single("calls", calls_a_graph_with_its_own_thread),
    "talk": lambda: _single("talk", talk),
    "sync": lambda: _single("sync", sync_emit),
    "fan_out": _fan_out,
    "nested": _nested,
    "interrupt": lambda: _chain(("talk", talk), ("ask", ask)),
    "paused": lambda: _chain(("talk", talk), ("sync", sync_emit)),
    "settings": lambda: _chain(
        ("settings", settings), ("child", _single("settings", settings).compile())
    ),
    "fails": lambda: _chain(("talk", talk), ("fail", fail_after_events)),
}

MODE_SETS = [
    ["values"],
    ["updates"],
    ["custom"],
    ["messages"],
    ["messages-tuple"],
    ["debug"],
    ["tasks"],
    ["checkpoints"],
    ["custom", "values"],
    ["messages-tuple", "custom", "updates"],
    ["values", "updates", "custom", "messages", "messages-tuple", "debug", "tasks", "checkpoints"],
]

# UUIDs (checkpoints, tasks, runs) and interrupt ids (32 hex digits).
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")


def _normalized(events: list[tuple[str, Any]]) -> list[Any]:
    """Ids and timestamps replaced by their order of first appearance: two runs of one graph
    differ only in those."""
    text = json.dumps([[name, serde.to_jsonable(data)] for name, data in events])
    seen: dict[str, str] = {}
    text = _ID.sub(lambda m: seen.setdefault(m.group(0), f"<id {len(seen)}>"), text)
    text = re.sub(r"run-<id (\d+)>(-\d+)?", r"run-<id \1>", text)
    return json.loads(_TIMESTAMP.sub("<time>", text))


# A second run on the thread, after the first stopped: (input, command, interrupt_before).
RESUMED = {
    "interrupt": (None, {"resume": "yes"}, None),
    "paused": (None, None, None),
    "functional": ({"items": [5]}, None, None),  # sees the first run's saved value
}
PAUSE_BEFORE = {"paused": ["sync"]}


async def _events(
    graph_name: str, modes: list[str], subgraphs: bool, hooks: bool
) -> tuple[list[Any], str | None]:
    graph = GRAPHS[graph_name]().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    thread = str(uuid.uuid4())
    events: list[tuple[str, Any]] = []
    failure = None

    async def run(graph_input: Any, command: Any, interrupt_before: list[str] | None) -> None:
        call = GraphCall(
            input=graph_input,
            command=command,
            config={"configurable": {"thread_id": thread, "graph_id": "g"}},
            context={"model": "m"},
            stream_modes=modes,
            subgraphs=subgraphs,
            interrupt_before=interrupt_before,
        )
        await run_graph(graph, call, lambda name, data: events.append((name, data)), hooks=hooks)

    graph_input = {"messages": [HumanMessage(content="hi", id="human-1")], "items": [3, 1, 2]}
    try:
        await run(graph_input, None, PAUSE_BEFORE.get(graph_name))
        if graph_name in RESUMED:
            await run(*RESUMED[graph_name])
    except ValueError as exc:
        failure = str(exc)
    return _normalized(events), failure


@pytest.mark.parametrize("subgraphs", [False, True], ids=["root", "subgraphs"])
@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
async def test_hooks_stream_what_astream_streams(graph_name: str, subgraphs: bool) -> None:
    streamed = 0
    for modes in MODE_SETS:
        expected = await _events(graph_name, modes, subgraphs, hooks=False)
        got = await _events(graph_name, modes, subgraphs, hooks=True)
        assert got == expected, f"{graph_name} {modes}"
        streamed += bool(expected[0])
    # A graph without custom events or messages streams nothing for those modes alone; the
    # comparison must still have had something to compare.
    assert streamed >= len(MODE_SETS) - 3


def _appender(into: list[Any]) -> Any:
    return lambda name, data: into.append(data)


@pytest.mark.parametrize("hooks", [True, False], ids=["hooks", "iterator"])
async def test_the_hooks_start_no_task_per_event(hooks: bool) -> None:
    """What the hooks save: `astream`'s iterator wakes its loop through a new waiter task for
    the custom events a node writes between two of its awaits (shown for contrast); through
    the hooks the tasks a run starts do not grow with its events."""
    created = 0
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        nonlocal created
        created += 1
        return factory(loop, coro, **kwargs) if factory else asyncio.Task(coro, loop=loop, **kwargs)

    async def chatty(state: State) -> State:
        writer = get_stream_writer()
        for i in range(state["items"][0]):
            writer({"i": i})
            await asyncio.sleep(0)
        return {"log": ["chatty"]}

    graph = _single("chatty", chatty).compile()
    tasks = {}
    loop.set_task_factory(counting)
    try:
        for events in (5, 50):
            created = 0
            received: list[Any] = []
            call = GraphCall(input={"items": [events]}, config={}, stream_modes=["custom"])
            await run_graph(graph, call, _appender(received), hooks=hooks)
            assert received == [{"i": i} for i in range(events)]
            tasks[events] = created
    finally:
        loop.set_task_factory(factory)
    if hooks:
        assert tasks[50] == tasks[5]
    else:
        assert tasks[50] >= tasks[5] + 10  # a waiter task every event or two


async def test_a_sync_nodes_thread_writes_nothing_after_its_run_was_cancelled() -> None:
    """A thread cannot be cancelled: what it writes after its run ended is dropped, not
    published after the run's end."""
    stop = threading.Event()
    writes_after_cancel = threading.Semaphore(0)
    cancelled = threading.Event()
    received: list[Any] = []

    def keeps_writing(state: State) -> State:
        writer = get_stream_writer()
        i = 0
        while not stop.is_set():
            writer({"i": i})
            i += 1
            if cancelled.is_set():
                writes_after_cancel.release()
            stop.wait(0.005)
        return {}

    run = asyncio.create_task(
        run_graph(
            _single("keeps_writing", keeps_writing).compile(),
            GraphCall(input={}, config={}, stream_modes=["custom"]),
            lambda name, data: received.append(data),
        )
    )
    try:
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert received, "the sync node's events never arrived"
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        count = len(received)
        cancelled.set()
        for _ in range(3):  # three writes after the cancel, handed to the loop...
            assert await asyncio.to_thread(writes_after_cancel.acquire, timeout=10)
        for _ in range(10):  # ...and the loop ran what they handed over
            await asyncio.sleep(0)
        assert len(received) == count
    finally:
        stop.set()


async def test_the_startup_check_keeps_the_hooks_when_they_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor, "use_hooks", True)
    assert await check_hooks() is True
    assert executor.use_hooks is True


@pytest.mark.parametrize("fault", ["drops custom events", "raises"])
async def test_the_startup_check_turns_off_hooks_that_misbehave(
    fault: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What a LangGraph release that changed its internals would look like: the process then
    reads the iterator, and says so."""
    monkeypatch.setattr(executor, "use_hooks", True)
    real = executor.hooked_config

    def faulty(config: dict[str, Any], modes: set[str], *args: Any, **kwargs: Any) -> Any:
        if fault == "raises":
            raise KeyError("__pregel_stream")
        return real(config, modes - {"custom"}, *args, **kwargs)

    monkeypatch.setattr(executor, "hooked_config", faulty)
    with caplog.at_level(logging.WARNING, logger="runyard.agents"):
        assert await check_hooks() is False
    assert executor.use_hooks is False
    assert "graph output is read from astream instead" in caplog.text
    # And runs still stream, through the iterator.
    received: list[Any] = []
    await run_graph(
        _single("talk", talk).compile(),
        GraphCall(
            input={"messages": [HumanMessage(content="hi")]}, config={}, stream_modes=["custom"]
        ),
        lambda name, data: received.append(data),
    )
    assert received == [{"before": "model"}, {"after": "model"}]
