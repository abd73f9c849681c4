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
    from langgraph.pregel._messages import StreamMessagesHandler, graph_namespace
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
    thread (chunks of a sync node, produced in an executor thread, are handed over in order).
    Chunks of subgraphs come too, with their namespace, also without `subgraphs`: LangGraph's
    loop produces them for a parent's stream, and the caller drops them. The caller runs
    `astream` with `stream_mode=[]`. `store` is the graph's: LangGraph takes a given runtime's
    store instead of the graph's own."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def on_loop(chunk: Chunk) -> None:
        if threading.get_ident() == loop_thread:
            receive(chunk)
        else:
            loop.call_soon_threadsafe(receive, chunk)

    def write_custom(payload: Any) -> None:
        task = get_config()[CONF]
        if not subgraphs:
            # Only the root graph's tasks write to the root's stream then (a subgraph run
            # without `subgraphs` has a writer that drops). A task of the root graph sees one
            # checkpoint in its map, also when nested under a task that called it (the
            # functional API); a subgraph's task sees its own graph's checkpoint too.
            if len(set((task.get(CONFIG_KEY_CHECKPOINT_MAP) or {}).values())) > 1:
                return
            on_loop(((), "custom", payload))
            return
        # The writing task's namespace, less its own segment, as LangGraph's own writer
        # computes it.
        task_ns = task[CONFIG_KEY_CHECKPOINT_NS]
        on_loop((tuple(task_ns.split(NS_SEP)[:-1]), "custom", payload))

    configurable = dict(config.get(CONF) or {})
    configurable[CONFIG_KEY_STREAM] = StreamProtocol(on_loop, set(modes))
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
        handler = StreamMessagesHandler(on_loop, True) if subgraphs else _RootMessages(on_loop)
        hooked["callbacks"] = [*(config.get("callbacks") or []), handler]
    return hooked


if HOOKS_AVAILABLE:

    class _RootMessages(StreamMessagesHandler):
        """The `messages` handler of a run without `subgraphs`. LangGraph's own, made with
        `subgraphs` off, ignores the model calls and nodes of subgraphs, so that a subgraph's
        messages reach the stream once, complete, from the root node that ran it. Given in the
        config such a handler is dropped by the root graph (which takes it for a caller's), so
        this one says `subgraphs` and ignores them itself."""

        def __init__(self, stream: Callable[[Chunk], None]) -> None:
            super().__init__(stream, True)

        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> Any:
            if not _in_subgraph(kwargs.get("metadata")):
                return super().on_chat_model_start(*args, **kwargs)
            return None

        def on_chain_start(self, *args: Any, **kwargs: Any) -> Any:
            if not _in_subgraph(kwargs.get("metadata")):
                return super().on_chain_start(*args, **kwargs)
            return None

    def _in_subgraph(metadata: dict[str, Any] | None) -> bool:
        # Outside a node (the root graph's own start) there is no namespace to read.
        if not metadata or "langgraph_checkpoint_ns" not in metadata:
            return False
        return len(graph_namespace(metadata)) > 0


def _drop(_: Any) -> None:
    """The writer when `custom` was not asked for: LangGraph's is a no-op too."""
