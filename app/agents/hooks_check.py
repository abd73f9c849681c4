"""A check, once per process before it runs graphs, that the stream hooks still give what
LangGraph's `astream` iterator gives.

The hooks (`app.agents.stream_hooks`) are LangGraph internals. The test suite compares both
paths in depth for the LangGraph it installs; this guards a deployment on another release:
a small graph (custom events, values, updates and messages, from the root and from a
subgraph) runs both ways, and if anything differs the process reads the iterator instead
and says so in its log.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from app import serde
from app.agents import executor
from app.agents.executor import GraphCall, run_graph

log = logging.getLogger("runyard.agents")

_PROBE_MODES = ["custom", "values", "updates", "messages-tuple"]
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class _Probe(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    n: int


async def _speak(state: _Probe) -> _Probe:
    writer = get_stream_writer()
    n = state.get("n", 0)
    writer({"n": n, "at": "start"})
    writer({"n": n, "at": "end"})
    return {"messages": [AIMessage(content=f"probe {n}", id=f"probe-{n}")], "n": n + 1}


def _probe_graph() -> Any:
    inner = StateGraph(_Probe)
    inner.add_node("speak", _speak)
    inner.add_edge(START, "speak")
    inner.add_edge("speak", END)
    outer = StateGraph(_Probe)
    outer.add_node("speak", _speak)
    outer.add_node("child", inner.compile())
    outer.add_edge(START, "speak")
    outer.add_edge("speak", "child")
    outer.add_edge("child", END)
    return outer.compile()


async def _events(graph: Any, subgraphs: bool, hooks: bool) -> list[Any]:
    events: list[tuple[str, Any]] = []
    call = GraphCall(input={"n": 0}, config={}, stream_modes=_PROBE_MODES, subgraphs=subgraphs)
    await run_graph(graph, call, lambda name, data: events.append((name, data)), hooks=hooks)
    # Task ids in the subgraphs' namespaces differ from run to run.
    text = serde.dumps([[name, serde.to_jsonable(data)] for name, data in events]).decode()
    return [_TASK_ID.sub("<task>", text)]


async def check_hooks() -> bool:
    """Compare both paths on the probe graph; turn the hooks off for this process if they
    differ or fail. Returns whether the hooks are in use."""
    if not executor.use_hooks:
        return False
    graph = _probe_graph()
    try:
        for subgraphs in (False, True):
            if await _events(graph, subgraphs, True) != await _events(graph, subgraphs, False):
                raise ValueError(f"different events (subgraphs={subgraphs})")
    except Exception as exc:
        executor.use_hooks = False
        log.warning(
            "LangGraph's stream hooks do not work as expected with this LangGraph (%s): "
            "graph output is read from astream instead, at a higher CPU cost",
            exc,
        )
    return executor.use_hooks
