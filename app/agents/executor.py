"""Running a LangGraph graph and turning its output into (event name, payload) pairs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langgraph.pregel import Pregel
from langgraph.types import Command

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


async def stream_graph(
    graph: Pregel,
    *,
    input: Any,
    command: dict[str, Any] | None,
    config: dict[str, Any],
    context: dict[str, Any] | None,
    stream_modes: list[str],
    subgraphs: bool,
    interrupt_before: Sequence[str] | str | None,
    interrupt_after: Sequence[str] | str | None,
    durability: str | None,
) -> AsyncIterator[tuple[str, Any]]:
    """Yield (event name, payload) for every chunk the requested stream modes produce."""
    graph_input: Any = build_command(command) or input
    kwargs: dict[str, Any] = {}
    if context:
        kwargs["context"] = context
    if interrupt_before:
        kwargs["interrupt_before"] = interrupt_before
    if interrupt_after:
        kwargs["interrupt_after"] = interrupt_after
    if durability:
        kwargs["durability"] = durability

    if "events" in stream_modes:
        async for event in graph.astream_events(graph_input, config, version="v2", **kwargs):
            yield "events", event
        return

    lg_modes = sorted({API_STREAM_MODES[m] for m in stream_modes if API_STREAM_MODES.get(m)})
    tuple_messages = "messages-tuple" in stream_modes
    legacy = _LegacyMessages() if "messages" in stream_modes else None
    async for item in graph.astream(
        graph_input, config, stream_mode=lg_modes, subgraphs=subgraphs, **kwargs
    ):
        if subgraphs:
            namespace, mode, chunk = item
        else:
            namespace, (mode, chunk) = (), item
        suffix = "|" + "|".join(namespace) if namespace else ""
        if mode == "messages":
            message, metadata = chunk
            if tuple_messages:
                yield f"messages{suffix}", (message, metadata)
            if legacy is not None:
                for pair in legacy.feed(message, metadata, suffix):
                    yield pair
            continue
        yield f"{mode}{suffix}", chunk
