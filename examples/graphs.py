"""Example graphs that need no LLM: they stream at once, so a new server shows output."""

from __future__ import annotations

import asyncio
from typing import Annotated

from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


async def echo(state: ChatState) -> ChatState:
    """Replies with the last user message, token by token, like a model would."""
    last = state.get("messages", [])[-1].content if state.get("messages") else "hello"
    words = f"You said: {last}".split(" ")
    writer = get_stream_writer()
    for i, word in enumerate(words):
        writer({"token": word, "index": i})
        await asyncio.sleep(0.01)
    return {"messages": [AIMessage(content=" ".join(words))]}


echo_builder = StateGraph(ChatState)
echo_builder.add_node("echo", echo)
echo_builder.add_edge(START, "echo")
echo_builder.add_edge("echo", END)
echo_graph = echo_builder.compile()


class CountState(TypedDict, total=False):
    count: int
    steps: int
    delay: float


async def tick(state: CountState) -> CountState:
    await asyncio.sleep(state.get("delay", 0.05))
    get_stream_writer()({"tick": state.get("count", 0) + 1})
    return {"count": state.get("count", 0) + 1}


def more(state: CountState) -> str:
    return "tick" if state.get("count", 0) < state.get("steps", 10) else END


counter_builder = StateGraph(CountState)
counter_builder.add_node("tick", tick)
counter_builder.add_edge(START, "tick")
counter_builder.add_conditional_edges("tick", more, ["tick", END])
counter_graph = counter_builder.compile()

__all__ = ["echo_graph", "counter_graph", "AIMessageChunk"]
