"""Executing one claimed run: build its config, stream the graph, publish every event."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from app import serde
from app.agents.executor import GraphCall, run_graph
from app.agents.registry import GraphRegistry
from app.agents.run_checkpointer import HandedSaves, RunCheckpointer
from app.broker import Broker, Event
from app.broker.base import SEQ_PER_ATTEMPT
from app.observability import metrics

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """What a run has produced so far; filled in while it streams, read when it ends."""

    run_id: str
    seq: int
    graph: Any = None
    values: Any = None
    interrupts: dict[str, Any] = field(default_factory=dict)
    next_nodes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)  # for the run duration metric
    ended: bool = False  # its end was published
    saves: HandedSaves | None = None  # its last checkpoints, for the finalize to store


class EventEmitter:
    def __init__(self, broker: Broker, progress: Progress) -> None:
        self._broker = broker
        self._progress = progress

    async def emit(self, name: str, payload: Any) -> None:
        await self._broker.publish(self._progress.run_id, self._next(name, payload))

    def emit_now(self, name: str, payload: Any) -> None:
        """`emit` without waiting for the broker: for the graph's chunks, handed over inside
        the graph's own code."""
        self._broker.publish_nowait(self._progress.run_id, self._next(name, payload))

    def _next(self, name: str, payload: Any) -> Event:
        try:
            data = serde.dumps(payload)
        except Exception as exc:  # an agent emitted something JSON cannot hold
            data = serde.dumps({"unserializable": repr(payload), "reason": str(exc)})
        self._progress.seq += 1
        metrics.EVENTS_PUBLISHED.inc()
        return Event(self._progress.seq, name, data)

    async def flush(self) -> None:
        """Return once what was emitted so far is in the replay log."""
        await self._broker.flush()


# Stream modes whose events show each step's checkpoint as saved.
_SHOWS_CHECKPOINTS = frozenset({"checkpoints", "debug"})


def stream_modes_of(kwargs: dict[str, Any]) -> list[str]:
    return kwargs.get("stream_mode") or ["values"]


def durability_of(kwargs: dict[str, Any]) -> str | None:
    """The durability the run's graph runs with: the run's own, else LangGraph's default,
    except that a temporary thread's state is saved once, at the end (or at an interrupt or
    error), not after every step. Only its final state is read, and LangGraph then skips a
    copy of the channels per step (0.2-0.3 ms of a 2-ms one-node run). The checkpoint events
    of the `checkpoints` and `debug` modes name each step's saved checkpoint, so those keep
    LangGraph's default."""
    durability = kwargs.get("durability")
    if durability is not None or not kwargs.get("temporary"):
        return durability
    return None if _SHOWS_CHECKPOINTS.intersection(stream_modes_of(kwargs)) else "exit"


def progress_for(run: dict[str, Any]) -> Progress:
    return Progress(run_id=run["run_id"], seq=(run["claims"] - 1) * SEQ_PER_ATTEMPT)


def run_config(run: dict[str, Any]) -> dict[str, Any]:
    kwargs = run["kwargs"]
    config = dict(kwargs.get("config") or {})
    configurable = dict(config.get("configurable") or {})
    configurable["thread_id"] = run["thread_id"]
    configurable["run_id"] = run["run_id"]
    config["configurable"] = configurable
    metadata = dict(config.get("metadata") or {})
    metadata.update(run["metadata"] or {})
    metadata.update(
        run_id=run["run_id"],
        thread_id=run["thread_id"],
        assistant_id=run["assistant_id"],
        graph_id=configurable.get("graph_id"),
        run_attempt=run["attempt"],
    )
    config["metadata"] = metadata
    config["run_id"] = uuid.UUID(run["run_id"])
    # The root run's name in the `events` stream and in traces: the graph's, as the API's
    # users see it, where LangGraph would say "LangGraph".
    if configurable.get("graph_id"):
        config.setdefault("run_name", configurable["graph_id"])
    return config


async def execute(
    run: dict[str, Any], registry: GraphRegistry, emitter: EventEmitter, progress: Progress
) -> None:
    """Stream the run's graph to the broker. Raises what the graph raises."""
    kwargs = run["kwargs"]
    config = run_config(run)
    graph_id = config["configurable"].get("graph_id")
    # A temporary thread (a stateless run, deleted when it ends) keeps its checkpoints in
    # memory: nobody reads them after the run, and they cost Postgres most of such a run's
    # statements. A run taken over after its worker was lost then starts over. Any other run
    # writes through to the server's checkpointer, and does not read back what it wrote.
    durability = durability_of(kwargs)
    if kwargs.get("temporary"):
        saver: Any = InMemorySaver()
    elif registry.checkpointer is not None:
        saver = RunCheckpointer(
            registry.checkpointer,
            run["thread_id"],
            new_thread=bool(kwargs.get("new_thread")) and run.get("claims", 1) <= 1,
            # LangGraph's default: checkpoints saved while the next step runs. "sync" waits
            # for each, "exit" saves once at the end: both go to the saver as they are.
            save_behind=kwargs.get("durability") in (None, "async"),
            before_save=emitter.flush,
        )
    else:
        saver = None
    graph = await registry.get(graph_id, config, checkpointer=saver)
    progress.graph = graph
    graph_input, command = kwargs.get("input"), kwargs.get("command")
    if run.get("claims", 1) > 1 and await _left_off_midway(graph, run):
        # Claimed again after its worker was lost: go on from the run's last checkpoint
        # instead of starting over, so finished nodes do not run twice.
        graph_input, command = None, None
        config["configurable"].pop("checkpoint_id", None)
    try:
        call = GraphCall(
            input=graph_input,
            command=command,
            config=config,
            context=kwargs.get("context"),
            stream_modes=stream_modes_of(kwargs),
            subgraphs=bool(kwargs.get("subgraphs")),
            interrupt_before=kwargs.get("interrupt_before"),
            interrupt_after=kwargs.get("interrupt_after"),
            durability=durability,
        )
        await run_graph(graph, call, emitter.emit_now)
    except BaseException:
        if isinstance(saver, RunCheckpointer):
            await saver.stopped()
        raise
    if isinstance(saver, RunCheckpointer):
        # Everything the graph saved is stored before the run is finalized, or by the
        # finalize's own statement.
        progress.saves = await saver.hand_over()


async def _left_off_midway(graph: Any, run: dict[str, Any]) -> bool:
    """Whether the thread's latest checkpoint was written by this run with nodes still to go."""
    try:
        snapshot = await graph.aget_state(
            {"configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}}
        )
    except Exception:
        return False
    return bool(snapshot.next) and (snapshot.metadata or {}).get("run_id") == run["run_id"]


async def read_final_state(progress: Progress, thread_id: str) -> None:
    """Final values and pending interrupts, from the checkpointer (the thread's truth)."""
    if progress.graph is None:
        return
    try:
        snapshot = await progress.graph.aget_state(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        )
    except Exception as exc:
        log.warning(
            "state of thread %s unreadable after run %s: %s", thread_id, progress.run_id, exc
        )
        return
    progress.values = serde.to_jsonable(snapshot.values)
    progress.next_nodes = list(snapshot.next)
    interrupts: dict[str, Any] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            interrupts[task.id] = serde.to_jsonable(list(task.interrupts))
    progress.interrupts = interrupts
