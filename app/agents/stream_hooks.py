"""Receiving a graph's stream chunks as LangGraph produces them, through the hooks it gives a
parent graph for its subgraphs, instead of from the `astream` iterator.

Why: `astream` hands every chunk from the producing task to its consumer through a queue
fed by `call_soon_threadsafe`, and for the `custom` and `messages` modes it keeps a waiter
task that wakes its loop once per chunk (a new task and an `asyncio.wait` each time). That is
about 60% of LangGraph's cost per custom event (110 against 45 µs, `bench.graph_cost`). A
graph run as a subgraph instead writes into its parent's `StreamProtocol` (config key
`CONFIG_KEY_STREAM`) and its parent's `Runtime.stream_writer`, synchronously, in the order it
produces them. Runyard gives the root graph such a parent, asks `astream` itself for no mode,
and so gets every chunk, with its namespace, as the graph makes it.

The hooks are LangGraph internals: `HOOKS_AVAILABLE` is false when they cannot be imported,
and `app.agents.executor.run_graph` then reads `astream` as before. A test runs many graphs
through both paths and requires the same events in the same order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

try:
    from langgraph._internal._constants import (
        CONF,
        CONFIG_KEY_CHECKPOINT_MAP,
        CONFIG_KEY_CHECKPOINT_NS,
        CONFIG_KEY_RUNTIME,
        CONFIG_KEY_STREAM,
        NS_SEP,
    )
    from langgraph.config import get_config
    from langgraph.pregel._messages import StreamMessagesHandler
    from langgraph.pregel.protocol import StreamProtocol
    from langgraph.runtime import Runtime

    HOOKS_AVAILABLE = True
except ImportError:  # another LangGraph layout: the iterator path stays
    HOOKS_AVAILABLE = False

# (namespace, LangGraph stream mode, payload), as LangGraph's loop produces it.
Chunk = tuple[tuple[str, ...], str, Any]


def hooked_config(
    config: dict[str, Any],
    modes: set[str],
    receive: Callable[[Chunk], None],
    *,
    subgraphs: bool,
    store: Any,
) -> dict[str, Any]:
    """`config` with hooks that pass every chunk of `modes` to `receive`, on the event loop's
    thread, in the order `astream` would yield them. Chunks of subgraphs come too, with their
    namespace, also without `subgraphs`: LangGraph's loop produces them for a parent's stream,
    and the caller drops them. The caller runs `astream` with `stream_mode=[]`. `store` is the
    graph's: LangGraph takes a given runtime's store instead of the graph's own."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    # `astream` takes the root graph's own chunks into its queue as they are made, and those
    # of the custom writer, the messages handler and subgraphs one turn of the event loop
    # later (handed over with `call_soon_threadsafe`, from whichever thread made them), so
    # does this: the same order, where a parallel task's end falls between such a chunk and
    # the next.
    def later(chunk: Chunk) -> None:
        if threading.get_ident() == loop_thread:
            loop.call_soon(receive, chunk)
        else:
            loop.call_soon_threadsafe(receive, chunk)

    def from_a_loop(chunk: Chunk) -> None:
        if chunk[0] or threading.get_ident() != loop_thread:
            later(chunk)
        else:
            receive(chunk)

    def write_custom(payload: Any) -> None:
        task = get_config()[CONF]
        if not subgraphs:
            # Only the root graph's tasks write to the root's stream then (a subgraph run
            # without `subgraphs` has a writer that drops). A task of the root graph sees one
            # checkpoint in its map, also when nested under a task that called it (the
            # functional API); a subgraph's task sees its own graph's checkpoint too.
            if len(set((task.get(CONFIG_KEY_CHECKPOINT_MAP) or {}).values())) > 1:
                return
            later(((), "custom", payload))
            return
        # The writing task's namespace, less its own segment, as LangGraph's own writer
        # computes it.
        task_ns = task[CONFIG_KEY_CHECKPOINT_NS]
        later((tuple(task_ns.split(NS_SEP)[:-1]), "custom", payload))

    configurable = dict(config.get(CONF) or {})
    configurable[CONFIG_KEY_STREAM] = StreamProtocol(from_a_loop, set(modes))
    # A graph whose own modes lack `custom` takes its writer from here, as a subgraph does.
    writer = write_custom if "custom" in modes else _drop
    given = configurable.get(CONFIG_KEY_RUNTIME)
    if isinstance(given, Runtime):
        configurable[CONFIG_KEY_RUNTIME] = given.override(
            stream_writer=writer, store=given.store or store
        )
    else:
        configurable[CONFIG_KEY_RUNTIME] = Runtime(
            context=getattr(given, "context", None), store=store, stream_writer=writer
        )
    hooked = {**config, CONF: configurable}
    if "messages" in modes:
        handler = StreamMessagesHandler(later, True) if subgraphs else _RootMessages(later)
        hooked["callbacks"] = [*(config.get("callbacks") or []), handler]
    return hooked


if HOOKS_AVAILABLE:

    class _RootMessages(StreamMessagesHandler):
        """The `messages` handler of a run without `subgraphs`: LangGraph's own, made with
        `subgraphs` off, except that it survives the root graph's start. Given in the config,
        such a handler is dropped by the root graph as a caller's, so this one says
        `subgraphs` until then; from the root graph's own start on it says no, as
        LangGraph's does: it ignores the model calls and nodes of subgraphs (a subgraph's
        messages reach the stream once, complete, from the root node that ran it), and a
        graph run with a config of its own from inside a node drops it."""

        def __init__(self, stream: Callable[[Chunk], None]) -> None:
            super().__init__(stream, True)

        def on_chain_start(self, *args: Any, **kwargs: Any) -> Any:
            self.subgraphs = False
            return super().on_chain_start(*args, **kwargs)


def _drop(_: Any) -> None:
    """The writer when `custom` was not asked for: LangGraph's is a no-op too."""
