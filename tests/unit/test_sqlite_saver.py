"""The embedded checkpointer runs LangGraph's SQLite saver on the event loop: a graph's
checkpoints, history and pending writes as through the library's async saver, without its
thread, and a listing that lets saves of the same process go on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from app.store.sqlite_saver import InlineSqliteSaver, connect


class State(TypedDict, total=False):
    n: int


async def add_one(state: State) -> State:
    return {"n": state.get("n", 0) + 1}


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[InlineSqliteSaver]:
    saver = InlineSqliteSaver(connect(tmp_path / "checkpoints.db"))
    saver.setup()
    yield saver
    saver.conn.close()


def _graph(saver: InlineSqliteSaver):  # noqa: ANN202 - a compiled graph
    builder = StateGraph(State)
    builder.add_node("first", add_one)
    builder.add_node("second", add_one)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver, interrupt_before=["second"])


async def test_a_graph_checkpoints_and_resumes_on_the_event_loop_thread(
    saver: InlineSqliteSaver,
) -> None:
    threads = threading.active_count()
    graph = _graph(saver)
    config = {"configurable": {"thread_id": "t1"}}
    await graph.ainvoke({"n": 0}, config)
    paused = await graph.aget_state(config)
    assert paused.values == {"n": 1} and paused.next == ("second",)
    await graph.ainvoke(None, config)  # resumed from the stored checkpoint
    done = await graph.aget_state(config)
    assert done.values == {"n": 2} and done.next == ()
    history = [s async for s in graph.aget_state_history(config)]
    assert [s.values.get("n") for s in history] == [2, 1, 0, None]
    assert threading.active_count() == threads  # aiosqlite starts one per connection
    await saver.adelete_thread("t1")
    assert await saver.aget_tuple(config) is None


async def test_saves_go_on_while_a_listing_is_consumed(saver: InlineSqliteSaver) -> None:
    graph = _graph(saver)
    for thread in ("a", "b"):
        await graph.ainvoke({"n": 0}, {"configurable": {"thread_id": thread}})
    listed = 0

    async def consume_and_save() -> None:
        nonlocal listed
        async for _ in saver.alist({"configurable": {"thread_id": "a"}}):
            listed += 1
            # The library's own listing still holds the saver's lock here: the save below
            # would wait for it forever, on the thread that has to release it.
            assert not saver.lock.locked()
            await graph.ainvoke(None, {"configurable": {"thread_id": "b"}})

    await asyncio.wait_for(consume_and_save(), 10)
    assert listed == 3
    state = await graph.aget_state({"configurable": {"thread_id": "b"}})
    assert state.values == {"n": 2}
