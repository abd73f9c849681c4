"""Running a LangGraph graph and turning its output into (event name, payload) pairs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langgraph.pregel import Pregel
from langgraph.types import Command

from app.agents.stream_hooks import HOOKS_AVAILABLE, Chunk, hooked_config

# Whether `run_graph` takes chunks through the stream hooks: they import, and (once
# `app.agents.hooks_check` ran) they give what the iterator gives.
use_hooks = HOOKS_AVAILABLE

# stream_mode names of the API, and the LangGraph stream modes that feed them.
API_STREAM_MODES = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "messages": "messages",
    "messages-tuple": "messages",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "events": None,
}


def normalize_stream_modes(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return ["values"]
    modes = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for mode in modes:
        if mode not in out:
            out.append(mode)
    return out or ["values"]


def build_command(command: dict[str, Any] | None) -> Command | None:
    if not command:
        return None
    goto = command.get("goto")
    kwargs: dict[str, Any] = {}
    if "resume" in command:
        kwargs["resume"] = command["resume"]
    if command.get("update") is not None:
        update = command["update"]
        # The API sends updates as [[key, value], ...] or as an object.
        kwargs["update"] = [tuple(u) for u in update] if isinstance(update, list) else update
    if goto:
        kwargs["goto"] = goto
    return Command(**kwargs)


class _LegacyMessages:
    """The `messages` stream mode: chunks accumulated per message id, as partial/complete."""

    def __init__(self) -> None:
        self._seen: dict[str, BaseMessage] = {}

    def feed(self, message: Any, metadata: dict[str, Any], suffix: str) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        msg_id = getattr(message, "id", None) or ""
        if msg_id not in self._seen:
            out.append((f"messages/metadata{suffix}", {msg_id: {"metadata": metadata}}))
        if isinstance(message, BaseMessageChunk):
            previous = self._seen.get(msg_id)
            merged = previous + message if isinstance(previous, BaseMessageChunk) else message
            self._seen[msg_id] = merged
            out.append((f"messages/partial{suffix}", [merged]))
        else:
            self._seen[msg_id] = message
            out.append((f"messages/complete{suffix}", [message]))
        return out


class ChunkNames:
    """Event names and payloads of the API for LangGraph's (namespace, mode, chunk) triples."""

    def __init__(self, stream_modes: list[str]) -> None:
        self._tuple_messages = "messages-tuple" in stream_modes
        # Asked for both, the tuples alone go out, as from LangGraph's server: both are the
        # messages of one LangGraph mode, and a client reads them under one event name.
        legacy = "messages" in stream_modes and not self._tuple_messages
        self._legacy = _LegacyMessages() if legacy else None

    def pairs(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> list[tuple[str, Any]]:
        suffix = "|" + "|".join(namespace) if namespace else ""
        if mode != "messages":
            return [(f"{mode}{suffix}", chunk)]
        message, metadata = chunk
        out: list[tuple[str, Any]] = []
        if self._tuple_messages:
            out.append((f"messages{suffix}", (message, metadata)))
        if self._legacy is not None:
            out.extend(self._legacy.feed(message, metadata, suffix))
        return out


@dataclass(frozen=True)
class GraphCall:
    """One run of a graph, as the API asked for it."""

    input: Any
    config: dict[str, Any]
    stream_modes: list[str]
    command: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    subgraphs: bool = False
    interrupt_before: Sequence[str] | str | None = None
    interrupt_after: Sequence[str] | str | None = None
    durability: str | None = None

    @property
    def graph_input(self) -> Any:
        return build_command(self.command) or self.input

    @property
    def langgraph_modes(self) -> set[str]:
        return {API_STREAM_MODES[m] for m in self.stream_modes if API_STREAM_MODES.get(m)}

    def astream_kwargs(self) -> dict[str, Any]:
        named = {
            "context": self.context,
            "interrupt_before": self.interrupt_before,
            "interrupt_after": self.interrupt_after,
            "durability": self.durability,
        }
        return {key: value for key, value in named.items() if value}


async def run_graph(
    graph: Pregel,
    call: GraphCall,
    sink: Callable[[str, Any], None],
    *,
    hooks: bool | None = None,
) -> None:
    """Run the graph, passing (event name, payload) to `sink` for every chunk the requested
    stream modes produce, on the event loop's thread, as the graph produces it (through
    `stream_hooks`; with `hooks` off, or for the `events` mode, read from `astream`).
    `hooks` defaults to `use_hooks`."""
    if not (use_hooks if hooks is None else hooks) or "events" in call.stream_modes:
        async for name, payload in stream_graph(graph, call):
            sink(name, payload)
        return
    names = ChunkNames(call.stream_modes)
    running = True

    def receive(chunk: Chunk) -> None:
        namespace, mode, payload = chunk
        # Not after the run: a sync node's thread outlives a cancelled run, and its end is
        # published once this returns.
        if not running or (namespace and not call.subgraphs):
            return
        for name, data in names.pairs(namespace, mode, payload):
            sink(name, data)

    hooked = hooked_config(
        call.config, call.langgraph_modes, receive, subgraphs=call.subgraphs, store=graph.store
    )
    try:
        async for _ in graph.astream(
            call.graph_input, hooked, stream_mode=[], **call.astream_kwargs()
        ):
            pass  # nothing is asked of the iterator: every chunk went to `receive`
    finally:
        running = False


async def stream_graph(graph: Pregel, call: GraphCall) -> AsyncIterator[tuple[str, Any]]:
    """Yield (event name, payload) for every chunk the requested stream modes produce, read
    from LangGraph's `astream` (or `astream_events`) iterator."""
    names = ChunkNames(call.stream_modes)
    if "events" in call.stream_modes:
        async for pair in _with_events(graph, call, names):
            yield pair
        return

    async for item in graph.astream(
        call.graph_input,
        call.config,
        stream_mode=sorted(call.langgraph_modes),
        subgraphs=call.subgraphs,
        **call.astream_kwargs(),
    ):
        for pair in names.pairs(*_triple(item, call.subgraphs)):
            yield pair


def _triple(item: Any, subgraphs: bool) -> Chunk:
    """(namespace, mode, chunk) of what `astream` yields for a list of modes: with
    `subgraphs`, that triple; without, (mode, chunk) of the root graph."""
    return item if subgraphs else ((), *item)


async def _with_events(
    graph: Pregel, call: GraphCall, names: ChunkNames
) -> AsyncIterator[tuple[str, Any]]:
    """The `events` mode beside any others: LangGraph's callback events, and the other modes'
    chunks taken from the root graph's own `on_chain_stream` events, which carry what its
    `astream` yields (so they come in the order the graph made them, as from one stream)."""
    root: str | None = None
    async for event in graph.astream_events(
        call.graph_input,
        call.config,
        version="v2",
        stream_mode=sorted(call.langgraph_modes),
        subgraphs=call.subgraphs,
        **call.astream_kwargs(),
    ):
        if root is None:
            root = event["run_id"]
        if event["run_id"] != root or event["event"] != "on_chain_stream":
            yield "events", event
            continue
        for pair in names.pairs(*_triple(event["data"]["chunk"], call.subgraphs)):
            yield pair
