"""The garbage collector's settings for a server process."""

from __future__ import annotations

import gc

# Allocations (less deallocations) between two collections of the youngest generation;
# Python's default is 700. A run allocates tens of thousands of short-lived objects (LangGraph's
# tasks, configs, events, futures), nearly all freed by reference counting: collecting every
# 700 walked the few still alive again and again, and promoted them into older generations
# that were then walked too.
YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Leave what startup built out of every later collection, and collect young objects
    less often.

    By the time a process is ready it holds over 200,000 long-lived objects (LangGraph,
    LangChain, pydantic, the graphs and their compiled schemas), and every full collection
    walked them all again with the event loop stopped. Frozen, they are never traversed; what
    the process allocates from now on is collected as before.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
