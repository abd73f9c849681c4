"""A run's checkpointer answers from what the run wrote exactly what the saver would."""

from __future__ import annotations

import asyncio
import copy
import operator
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from app.agents import save_queue
from app.agents.run_checkpointer import RunCheckpointer


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]
    answer: str


def _graph(*, ask: bool, then: Any = None) -> Any:
    """first, then second (asking a question if `ask`), or `then` in second's place."""

    def first(state: State) -> State:
        return {"steps": ["first"]}

    def second(state: State) -> State:
        if ask:
            return {"steps": ["second"], "answer": interrupt({"question": "go on?"})}
        return {"steps": ["second"]}

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", then or second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile()


class CountingSaver(InMemorySaver):
    def __init__(self, put_delay: float = 0.0) -> None:
        super().__init__()
        self.reads = 0
        self.put_delay = put_delay

    async def aget_tuple(self, config: Any) -> Any:
        self.reads += 1
        return await super().aget_tuple(config)

    async def aput(self, *args: Any) -> Any:
        # A slow database: with durability "async" a checkpoint's writes are then saved
        # before the checkpoint itself, as the SQLite saver does it.
        if self.put_delay:
            await asyncio.sleep(self.put_delay)
        return await super().aput(*args)


def _state(snapshot: Any) -> tuple[Any, ...]:
    return (
        snapshot.values,
        snapshot.next,
        [(t.name, t.interrupts, t.error) for t in snapshot.tasks],
        {k: v for k, v in snapshot.metadata.items() if k != "writes"},
        snapshot.config,
        snapshot.parent_config,
    )


@pytest.mark.parametrize("put_delay", [0.0, 0.01], ids=["fast puts", "slow puts"])
@pytest.mark.parametrize("ask", [False, True], ids=["to the end", "interrupted"])
@pytest.mark.parametrize("durability", ["async", "sync", "exit"])
async def test_the_final_state_is_the_savers_without_reading_it(
    ask: bool, durability: str, put_delay: float
) -> None:
    saver = CountingSaver(put_delay)
    mine = RunCheckpointer(saver, "t1", new_thread=True)
    graph = _graph(ask=ask).copy(update={"checkpointer": mine})
    config = {"configurable": {"thread_id": "t1"}}
    async for _ in graph.astream({"steps": []}, config, durability=durability):
        pass
    from_memory = await graph.aget_state(config)
    assert saver.reads == 0  # neither at the start (a new thread) nor at the end
    from_saver = await _graph(ask=ask).copy(update={"checkpointer": saver}).aget_state(config)
    assert _state(from_memory) == _state(from_saver)
    assert from_memory.values["steps"] == (["first"] if ask else ["first", "second"])
    asked = [i.value for t in from_memory.tasks for i in t.interrupts]
    assert asked == ([{"question": "go on?"}] if ask else [])


async def test_a_resumed_thread_is_read_once_then_answered_from_memory() -> None:
    saver = CountingSaver()
    config = {"configurable": {"thread_id": "t2"}}
    first_run = _graph(ask=True).copy(update={"checkpointer": saver})
    async for _ in first_run.astream({"steps": []}, config):
        pass
    saver.reads = 0
    mine = RunCheckpointer(saver, "t2", new_thread=False)
    graph = _graph(ask=True).copy(update={"checkpointer": mine})
    async for _ in graph.astream(Command(resume="yes"), config):
        pass
    snapshot = await graph.aget_state(config)
    assert saver.reads == 1  # the start of the run: the thread had checkpoints
    assert snapshot.values == {"steps": ["first", "second"], "answer": "yes"}
    assert snapshot.next == ()
    direct = await _graph(ask=True).copy(update={"checkpointer": saver}).aget_state(config)
    assert _state(snapshot) == _state(direct)


async def test_after_forget_and_for_other_threads_the_saver_answers() -> None:
    saver = CountingSaver()
    mine = RunCheckpointer(saver, "t3", new_thread=True)
    graph = _graph(ask=False).copy(update={"checkpointer": mine})
    config = {"configurable": {"thread_id": "t3"}}
    async for _ in graph.astream({"steps": []}, config):
        pass
    await mine.aget_tuple({"configurable": {"thread_id": "other"}})
    assert saver.reads == 1
    mine.forget()
    snapshot = await graph.aget_state(config)
    assert saver.reads == 2
    assert snapshot.values["steps"] == ["first", "second"]
    # History and deletes are the saver's own.
    history = [t.config async for t in mine.alist(config)]
    assert history == [t.config async for t in saver.alist(config)] and len(history) == 4
    await mine.adelete_thread("t3")
    assert [t async for t in saver.alist(config)] == []


def test_versions_and_copies_are_the_savers() -> None:
    saver = InMemorySaver()
    mine = RunCheckpointer(saver, "t4", new_thread=True)
    # The Postgres and memory savers' versions: "<counter>.0.<random>", not the base's ints.
    assert mine.get_next_version(None, None).split(".")[0] == "0" * 31 + "1"
    clone = copy.copy(mine)
    assert clone.saver is saver


class BatchingSaver(CountingSaver):
    """A saver that saves in batches, as the Postgres one does, with a slow database: each
    batch takes `batch_delay`, and `fail_next` makes the next one fail."""

    def __init__(self, batch_delay: float = 0.005) -> None:
        super().__init__()
        self.batch_delay = batch_delay
        self.batches: list[int] = []
        self.fail_next = False

    async def save_together(self, saves: Any) -> None:
        await asyncio.sleep(self.batch_delay)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database went away")
        self.batches.append(len(saves))
        for save in saves:
            await save()


async def _run(
    saver: Any,
    thread_id: str,
    *,
    ask: bool = False,
    save_behind: bool = True,
    before_save: Any = None,
) -> tuple[RunCheckpointer, Any, dict[str, Any]]:
    """Run the graph to its end (or interrupt) through a run's checkpointer."""
    mine = RunCheckpointer(
        saver, thread_id, new_thread=True, save_behind=save_behind, before_save=before_save
    )
    graph = _graph(ask=ask).copy(update={"checkpointer": mine})
    config = {"configurable": {"thread_id": thread_id}}
    async for _ in graph.astream({"steps": []}, config):
        pass
    return mine, graph, config


@pytest.mark.parametrize("ask", [False, True], ids=["to the end", "interrupted"])
async def test_saves_behind_the_run_are_all_stored_once_drained(ask: bool) -> None:
    saver = BatchingSaver()
    mine, graph, config = await _run(saver, "t5", ask=ask)
    stored_when_run_ended = sum(saver.batches)
    await mine.drain()
    # The graph did not wait for the database: saves handed over while a batch was in flight
    # went out together, and some were still on their way when the graph was done.
    assert stored_when_run_ended < sum(saver.batches)
    assert len(saver.batches) < sum(saver.batches)
    from_memory = await graph.aget_state(config)
    assert saver.reads == 0
    plain = _graph(ask=ask).copy(update={"checkpointer": CountingSaver()})
    async for _ in plain.astream({"steps": []}, config):
        pass
    from_saver = await _graph(ask=ask).copy(update={"checkpointer": saver}).aget_state(config)
    expected = await plain.aget_state(config)
    for snapshot in (from_memory, from_saver):
        assert snapshot.values == expected.values
        assert snapshot.next == expected.next
        asked = [[i.value for i in t.interrupts] for t in snapshot.tasks]
        assert asked == [[i.value for i in t.interrupts] for t in expected.tasks]
    history = [t async for t in saver.alist(config)]
    assert len(history) == len([t async for t in plain.checkpointer.alist(config)])


async def test_a_short_runs_saves_go_in_one_batch_when_it_drains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A linger of a minute: the run's saves wait for one another, and the drain at the run's
    # end sends them at once instead of waiting it out.
    monkeypatch.setattr(save_queue, "LINGER_SECS", 60.0)
    saver = BatchingSaver(batch_delay=0.0)
    mine, _, config = await _run(saver, "t10")
    assert saver.batches == []
    await asyncio.wait_for(mine.drain(), 5)
    assert len(saver.batches) == 1
    assert len([t async for t in saver.alist(config)]) == 4


async def test_saves_are_stored_after_the_linger_without_a_drain() -> None:
    saver = BatchingSaver(batch_delay=0.0)
    _, _, config = await _run(saver, "t11")
    deadline = asyncio.get_running_loop().time() + 5
    while sum(saver.batches) < 7 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    assert sum(saver.batches) == 7  # four checkpoints, three tasks' writes
    assert len([t async for t in saver.alist(config)]) == 4


async def test_a_read_through_the_saver_waits_for_the_saves() -> None:
    saver = BatchingSaver(batch_delay=0.05)
    mine, _, config = await _run(saver, "t6")
    assert len([t async for t in saver.alist(config)]) < 4  # some still on their way
    history = [t async for t in mine.alist(config)]
    assert len(history) == 4
    mine.forget()
    snapshot = await mine.aget_tuple(config)
    assert snapshot is not None and snapshot.checkpoint["channel_values"]["steps"] == [
        "first",
        "second",
    ]


async def test_a_failed_batch_fails_the_next_save_and_the_drain() -> None:
    saver = BatchingSaver()
    saver.fail_next = True
    mine = RunCheckpointer(saver, "t7", new_thread=True, save_behind=True)
    graph = _graph(ask=False).copy(update={"checkpointer": mine})
    config = {"configurable": {"thread_id": "t7"}}
    with pytest.raises(ConnectionError, match="database went away"):
        async for _ in graph.astream({"steps": []}, config):
            await asyncio.sleep(0.02)  # the first batch fails while the graph goes on
        await mine.drain()
    with pytest.raises(ConnectionError):
        await mine.drain()


async def test_saves_go_to_the_saver_one_by_one_without_save_behind_or_batches() -> None:
    saver = BatchingSaver()
    await _run(saver, "t8", save_behind=False)
    assert saver.batches == [] and saver.reads == 0
    # A saver that cannot save in batches is used one save at a time.
    plain = CountingSaver()
    _, _, config = await _run(plain, "t9")
    assert len([t async for t in plain.alist(config)]) == 4


@pytest.mark.parametrize("save_behind", [False, True], ids=["one by one", "behind the run"])
async def test_the_runs_events_are_flushed_before_each_save(save_behind: bool) -> None:
    """A run taken over from a checkpoint must not have lost the events of the steps before it:
    they reach the replay log before that checkpoint is saved."""
    order: list[str] = []

    class Recording(BatchingSaver):
        async def aput(self, *args: Any) -> Any:
            order.append("save")
            return await super().aput(*args)

        async def aput_writes(self, *args: Any, **kwargs: Any) -> Any:
            order.append("save")
            return await super().aput_writes(*args, **kwargs)

    async def flush() -> None:
        order.append("flush")

    saver = Recording()
    mine = RunCheckpointer(
        saver, "t10", new_thread=True, save_behind=save_behind, before_save=flush
    )
    graph = _graph(ask=False).copy(update={"checkpointer": mine})
    async for _ in graph.astream({"steps": []}, {"configurable": {"thread_id": "t10"}}):
        pass
    await mine.drain()
    assert order.count("save") >= 6 and order[0] == "flush"
    if save_behind:  # once per batch, before it
        assert order.count("flush") == len(saver.batches)
    else:  # once per save, before it
        assert order == ["flush", "save"] * (len(order) // 2)


@pytest.mark.parametrize("save_behind", [False, True], ids=["one by one", "behind the run"])
async def test_a_run_stopped_midway_has_its_final_state_all_the_same(save_behind: bool) -> None:
    """Cancelled in its second step: the state is the saver's. Saved behind the run, it comes
    from memory once the saves are stored; saved one by one, from the saver."""

    saver = BatchingSaver()
    mine = RunCheckpointer(saver, "t11", new_thread=True, save_behind=save_behind)
    started = asyncio.Event()

    async def second(state: State) -> State:
        started.set()
        await asyncio.sleep(60)
        return {"steps": ["second"]}

    graph = _graph(ask=False, then=second).copy(update={"checkpointer": mine})
    config = {"configurable": {"thread_id": "t11"}}

    async def run() -> None:
        async for _ in graph.astream({"steps": []}, config):
            pass

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await mine.stopped()
    snapshot = await graph.aget_state(config)
    assert saver.reads == (0 if save_behind else 1)
    direct = await _graph(ask=False).copy(update={"checkpointer": saver}).aget_state(config)
    assert (snapshot.values, snapshot.next) == (direct.values, direct.next)
    assert snapshot.values == {"steps": ["first"]} and snapshot.next == ("second",)


class DocumentSaver(BatchingSaver):
    """A batching saver that can also hand a batch over as a document (the Postgres saver's
    `document_of`) and store it later (`store_document`)."""

    def __init__(self) -> None:
        super().__init__(batch_delay=0.0)
        self.documents: dict[str, list[Any]] = {}
        self.stored: list[str] = []

    async def document_of(self, saves: Any) -> str:
        document = f"doc-{len(self.documents)}"
        self.documents[document] = list(saves)
        return document

    async def store_document(self, document: str) -> None:
        self.stored.append(document)
        for save in self.documents[document]:
            await save()


async def test_the_saves_still_queued_at_the_end_are_handed_over_unsent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(save_queue, "LINGER_SECS", 60.0)  # all of the run's saves wait
    order: list[str] = []

    async def flush() -> None:
        order.append("flush")

    saver = DocumentSaver()
    mine, graph, config = await _run(saver, "t12", before_save=flush)
    handed = await asyncio.wait_for(mine.hand_over(), 5)
    assert handed is not None and order == ["flush"]  # the events go first, as for a batch
    assert len(saver.documents[handed.document]) == 7  # four checkpoints, three tasks' writes
    assert saver.batches == [] and saver.stored == []
    # The final state needs no read; a read that needs the database stores them first.
    assert (await graph.aget_state(config)).values == {"steps": ["first", "second"]}
    assert saver.stored == []
    assert len([t async for t in mine.alist(config)]) == 4
    assert saver.stored == [handed.document] and handed.stored
    await handed.store()
    await mine.drain()
    assert saver.stored == [handed.document]  # once


async def test_without_documents_the_end_stores_everything_itself() -> None:
    saver = BatchingSaver(batch_delay=0.0)
    mine, _, config = await _run(saver, "t13")
    assert await mine.hand_over() is None
    assert sum(saver.batches) == 7
    assert len([t async for t in saver.alist(config)]) == 4


@pytest.mark.parametrize("when", ["flushing its events", "making the document"])
async def test_a_run_cancelled_while_handing_over_stores_its_saves(
    monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    monkeypatch.setattr(save_queue, "LINGER_SECS", 60.0)
    started = asyncio.Event()

    async def slow_flush() -> None:
        if when == "flushing its events":
            started.set()
            await asyncio.sleep(0.05)

    class SlowDocuments(DocumentSaver):
        async def document_of(self, saves: Any) -> str:
            if when == "making the document":
                started.set()
                await asyncio.sleep(0.05)
            return await super().document_of(saves)

    saver = SlowDocuments()
    mine, _, config = await _run(saver, "t14", before_save=slow_flush)
    task = asyncio.create_task(mine.hand_over())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(saver.stored) == 1  # stored all the same
    assert len([t async for t in saver.alist(config)]) == 4
