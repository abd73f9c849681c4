"""A thread's state through LangGraph's own API: update it, walk its history, copy it, prune
it, seed it. The checkpointer is the truth; the thread row mirrors values and status."""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.pregel import Pregel
from langgraph.types import StateUpdate

from app import serde
from app.container import Container
from app.services.errors import Conflict, NotFound, ServiceError
from app.services.threads import _checkpoint, get, snapshot_to_json
from app.services.threads import delete as delete_thread
from app.store.db import utcnow
from app.store.threads import Threads

Row = dict[str, Any]

NO_GRAPH = (
    "Thread '{thread_id}' has no assigned graph ID. This usually occurs when no runs have "
    "been made on this particular thread. This operation requires a graph ID. Please ensure "
    "a run has been made for the thread or manually update the thread metadata (by setting "
    "the 'graph_id' field) before running this operation."
)


class BadRequest(ServiceError):
    status_code = 400


async def graph_of_thread(c: Container, thread: Row) -> Pregel:
    graph_id = (thread["metadata"] or {}).get("graph_id")
    if not graph_id:
        raise BadRequest(NO_GRAPH.format(thread_id=thread["thread_id"]))
    if graph_id not in c.registry:
        raise NotFound(f"Graph '{graph_id}' of thread '{thread['thread_id']}' is not loaded")
    return await c.registry.get(graph_id)


def _config(thread_id: str, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    for key in ("checkpoint_ns", "checkpoint_id", "checkpoint_map"):
        if checkpoint and checkpoint.get(key) is not None:
            configurable[key] = checkpoint[key]
    return {"configurable": configurable}


async def mirror(c: Container, graph: Pregel, thread_id: str) -> Row | None:
    """Copy the latest state into the thread row: values, interrupts, and the status LangGraph
    gives a thread whose graph has nodes still to run (`interrupted`)."""
    snapshot = await graph.aget_state(_config(thread_id, None))
    interrupts: dict[str, Any] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            interrupts[task.id] = serde.to_jsonable(list(task.interrupts))
    async with c.db.begin() as conn:
        current = await Threads.get_for_update(conn, thread_id, lock=c.db.is_postgres)
        if current is None:
            return None
        fields: dict[str, Any] = {
            "values": serde.to_jsonable(snapshot.values),
            "interrupts": interrupts,
            "state_updated_at": utcnow(),
        }
        if current["status"] != "busy":
            fields["status"] = "interrupted" if snapshot.next else "idle"
        return await Threads.set_fields(conn, thread_id, **fields)


async def update(
    c: Container,
    thread_id: str,
    values: Any,
    *,
    as_node: str | None,
    checkpoint: dict[str, Any] | None,
) -> dict[str, Any]:
    thread = await get(c, thread_id)
    if thread["status"] == "busy":
        raise Conflict(f"Thread {thread_id} is busy: a run is in progress")
    graph = await graph_of_thread(c, thread)
    if as_node is not None and as_node not in graph.nodes:
        raise BadRequest(f"Node {as_node} does not exist")
    try:
        config = _config(thread_id, checkpoint)
        config["metadata"] = {
            "graph_id": thread["metadata"]["graph_id"],
            "thread_id": thread_id,
        }
        written = await graph.aupdate_state(config, values, as_node=as_node)
    except (ValueError, KeyError, TypeError) as exc:
        # LangGraph's own refusals (ambiguous update, unknown channel...): the caller's input.
        raise BadRequest(str(exc) or type(exc).__name__) from None
    await mirror(c, graph, thread_id)
    point = _checkpoint(written)
    return {
        "checkpoint": point,
        "configurable": point,
        "checkpoint_id": point["checkpoint_id"] if point else None,
    }


async def history(
    c: Container,
    thread_id: str,
    *,
    limit: int,
    before: str | dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    checkpoint: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    thread = await get(c, thread_id)
    if not (thread["metadata"] or {}).get("graph_id"):
        return []
    graph = await graph_of_thread(c, thread)
    before_config = None
    if isinstance(before, str):
        before_config = _config(thread_id, {"checkpoint_id": before})
    elif before:
        before_config = _config(thread_id, before)
    return [
        snapshot_to_json(s)
        async for s in graph.aget_state_history(
            _config(thread_id, checkpoint),
            filter=metadata or None,
            before=before_config,
            limit=limit,
        )
    ]


async def copy(c: Container, thread_id: str) -> Row:
    source = await get(c, thread_id)
    target_id = str(uuid.uuid4())
    row = Threads.new_row(target_id, dict(source["metadata"] or {}))
    row["config"] = source["config"] or {}
    async with c.db.begin() as conn:
        await Threads.insert(conn, row)
    copied = await c.checkpoints.copy_thread(thread_id, target_id)
    if copied and (source["metadata"] or {}).get("graph_id") in c.registry:
        graph = await graph_of_thread(c, source)
        return await mirror(c, graph, target_id) or row
    return row


async def prune(c: Container, thread_ids: list[str], strategy: str) -> int:
    pruned = 0
    # One query to drop unknown ids: a request naming thousands of them must not cost a
    # round trip each.
    for thread_id in await c.threads.existing_ids(thread_ids):
        if strategy == "delete":
            try:
                await delete_thread(c, thread_id)
            except NotFound:
                continue
        else:
            await c.checkpoints.keep_latest(thread_id)
        pruned += 1
    return pruned


async def seed(c: Container, thread: Row, supersteps: list[dict[str, Any]]) -> Row:
    """Apply `supersteps` given at thread creation, each a list of state updates."""
    graph = await graph_of_thread(c, thread)
    steps = [
        [
            StateUpdate(u.get("values"), u.get("as_node"), u.get("task_id"))
            for u in step.get("updates") or []
        ]
        for step in supersteps
    ]
    try:
        await graph.abulk_update_state(_config(thread["thread_id"], None), steps)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(str(exc) or type(exc).__name__) from None
    return await mirror(c, graph, thread["thread_id"]) or thread
