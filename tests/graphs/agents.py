"""Deterministic, LLM-free graphs the test suite runs."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store, get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict


class Count(TypedDict, total=False):
    count: int
    steps: int
    delay: float
    pid: int


async def tick(state: Count) -> Count:
    await asyncio.sleep(state.get("delay", 0.0))
    n = state.get("count", 0) + 1
    get_stream_writer()({"tick": n, "pid": os.getpid()})
    return {"count": n, "pid": os.getpid()}


def _more(state: Count) -> str:
    return "tick" if state.get("count", 0) < state.get("steps", 3) else END


_counter = StateGraph(Count)
_counter.add_node("tick", tick)
_counter.add_edge(START, "tick")
_counter.add_conditional_edges("tick", _more, ["tick", END])
counter = _counter.compile()


class Chat(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


async def fail(state: Chat) -> Chat:
    raise ValueError("the agent failed on purpose")


_boom = StateGraph(Chat)
_boom.add_node("fail", fail)
_boom.add_edge(START, "fail")
_boom.add_edge("fail", END)
boom = _boom.compile()


async def chat_node(state: Chat) -> Chat:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello from the fake model")]))
    reply = await model.ainvoke(state.get("messages", []))
    return {"messages": [reply]}


_chat = StateGraph(Chat)
_chat.add_node("model", chat_node)
_chat.add_edge(START, "model")
_chat.add_edge("model", END)
chat = _chat.compile()


_inner = StateGraph(Count)
_inner.add_node("tick", tick)
_inner.add_edge(START, "tick")
_inner.add_edge("tick", END)

_outer = StateGraph(Count)
_outer.add_node("child", _inner.compile())
_outer.add_edge(START, "child")
_outer.add_edge("child", END)
nested = _outer.compile()


def make_counter(config: dict) -> object:
    """A graph factory, as langgraph.json allows."""
    return _counter.compile()


async def long_task(state: Count) -> Count:
    """One node that works for `steps` × `delay` seconds, emitting a custom event per step:
    long runs without LangGraph's recursion limit."""
    writer = get_stream_writer()
    n = state.get("count", 0)
    for _ in range(state.get("steps", 3)):
        await asyncio.sleep(state.get("delay", 0.01))
        n += 1
        writer({"tick": n, "pid": os.getpid()})
    return {"count": n, "pid": os.getpid()}


_sleeper = StateGraph(Count)
_sleeper.add_node("work", long_task)
_sleeper.add_edge(START, "work")
_sleeper.add_edge("work", END)
sleeper = _sleeper.compile()


class Echo(TypedDict, total=False):
    seen_configurable: dict
    seen_context: dict


class EchoContext(TypedDict, total=False):
    model: str
    temperature: float


async def echo_settings(state: Echo, config: RunnableConfig, runtime: Runtime) -> Echo:
    """Hands back what the run was configured with, so tests can see what reached the graph."""
    given = config.get("configurable") or {}
    configurable = {k: v for k, v in given.items() if not k.startswith(("__", "checkpoint_"))}
    return {"seen_configurable": configurable, "seen_context": dict(runtime.context or {})}


_echo = StateGraph(Echo, context_schema=EchoContext)
_echo.add_node("echo", echo_settings)
_echo.add_edge(START, "echo")
_echo.add_edge("echo", END)
echo = _echo.compile()


class Memo(TypedDict, total=False):
    namespace: list[str]
    note: str
    recalled: dict | None


async def recall(state: Memo, store: BaseStore) -> Memo:
    """Reads what the API put under key "from_api": the store arrives as a node parameter."""
    item = await store.aget(tuple(state["namespace"]), "from_api")
    return {"recalled": item.value if item else None}


async def remember(state: Memo) -> Memo:
    """Writes key "from_graph" for the API to read: the store comes from get_store()."""
    await get_store().aput(tuple(state["namespace"]), "from_graph", {"note": state["note"]})
    return {}


_memo = StateGraph(Memo)
_memo.add_node("recall", recall)
_memo.add_node("remember", remember)
_memo.add_edge(START, "recall")
_memo.add_edge("recall", "remember")
_memo.add_edge("remember", END)
memo = _memo.compile()


class Note(TypedDict, total=False):
    text: str
    fail: bool


async def write_nul(state: Note) -> Note:
    """Produces what Postgres cannot store in JSON, a NUL character: in its state, or with
    `fail` in its error."""
    if state.get("fail"):
        raise ValueError("a bad byte: \x00")
    return {"text": "a\x00b"}


_unstorable = StateGraph(Note)
_unstorable.add_node("write_nul", write_nul)
_unstorable.add_edge(START, "write_nul")
_unstorable.add_edge("write_nul", END)
unstorable = _unstorable.compile()
