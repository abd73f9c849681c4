"""A graph that stops for a human: write a draft, ask for review with `interrupt()`, publish."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class Review(TypedDict, total=False):
    topic: str
    draft: str
    verdict: Any
    log: Annotated[list[str], operator.add]


def write(state: Review) -> Review:
    return {"draft": f"a draft about {state.get('topic', 'nothing')}", "log": ["write"]}


def review(state: Review) -> Review:
    verdict = interrupt({"question": "publish this?", "draft": state["draft"]})
    return {"verdict": verdict, "log": ["review"]}


def publish(state: Review) -> Review:
    return {"log": ["publish"]}


_review = StateGraph(Review)
_review.add_node("write", write)
_review.add_node("review", review)
_review.add_node("publish", publish)
_review.add_edge(START, "write")
_review.add_edge("write", "review")
_review.add_edge("review", "publish")
_review.add_edge("publish", END)
hitl = _review.compile()
