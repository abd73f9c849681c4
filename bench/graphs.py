"""Deterministic, LLM-free graphs the benchmark runs. Their output is fully predictable from
their input, so every result can be checked.

- `one`: a single node; the output is `{"token": t, "echo": "t:done"}`.
- `emit`: a single node emitting `events` custom events `{"token": t, "seq": i, "of": n}`
  (i = 1..n), sleeping `delay` seconds before each; the output adds `emitted: n`.
- `carry`: `one` with a `payload` in its state, kept as it came: a run whose input and
  final state are as large as the payload (a long conversation's are 100 KB and more).
"""

from __future__ import annotations

import asyncio

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class One(TypedDict, total=False):
    token: str
    echo: str


async def answer(state: One) -> One:
    return {"echo": f"{state['token']}:done"}


_one = StateGraph(One)
_one.add_node("answer", answer)
_one.add_edge(START, "answer")
_one.add_edge("answer", END)
one = _one.compile()


class Emit(TypedDict, total=False):
    token: str
    events: int
    delay: float
    emitted: int


async def emit_events(state: Emit) -> Emit:
    writer = get_stream_writer()
    token, total, delay = state["token"], state.get("events", 10), state.get("delay", 0.0)
    for seq in range(1, total + 1):
        if delay:
            await asyncio.sleep(delay)
        writer({"token": token, "seq": seq, "of": total})
    return {"emitted": total}


_emit = StateGraph(Emit)
_emit.add_node("emit", emit_events)
_emit.add_edge(START, "emit")
_emit.add_edge("emit", END)
emit = _emit.compile()


class Carry(TypedDict, total=False):
    token: str
    payload: list[dict[str, str]]
    echo: str


_carry = StateGraph(Carry)
_carry.add_node("answer", answer)  # type: ignore[arg-type]
_carry.add_edge(START, "answer")
_carry.add_edge("answer", END)
carry = _carry.compile()


def carry_input(token: str, size: int) -> dict[str, object]:
    """`carry`'s input with a payload of about `size` bytes of JSON: messages of 200 characters."""
    messages = [{"role": "user", "content": f"{i:06d}" + "x" * 194} for i in range(size // 240)]
    return {"token": token, "payload": messages}


def carry_output(token: str, size: int) -> dict[str, object]:
    return {**carry_input(token, size), "echo": f"{token}:done"}


def one_output(token: str) -> dict[str, str]:
    """What `one` must return for this token."""
    return {"token": token, "echo": f"{token}:done"}


def emit_input(token: str, events: int, delay: float = 0.0) -> dict[str, object]:
    return {"token": token, "events": events, "delay": delay}


def emit_output(token: str, events: int, delay: float = 0.0) -> dict[str, object]:
    """What `emit` must return for this input."""
    return {**emit_input(token, events, delay), "emitted": events}
