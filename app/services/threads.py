"""Threads: their rows, and their state as the LangGraph checkpointer holds it."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from app import serde
from app.broker.base import cancel_message
from app.container import Container
from app.services.errors import Conflict, Invalid, NotFound
from app.store.db import utcnow
from app.store.threads import Threads

Row = dict[str, Any]


def public(row: Row) -> Row:
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "state_updated_at": row.get("state_updated_at") or row["created_at"],
        "metadata": row["metadata"] or {},
        "status": row["status"],
        "config": row["config"] or {},
        "values": row["values"],
        "interrupts": row["interrupts"] or {},
        "error": row["error"],
    }


EXTRACT_ROOTS = ("config", "interrupts", "metadata", "values")
_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")


def extract_path(path: str) -> list[str | int]:
    """`values.messages[-1].content` as its steps: keys, and list indexes (negative from the
    end). Raises Invalid for a path that does not start at a thread's JSON fields."""
    steps: list[str | int] = []
    at = 0
    while at < len(path):
        step = _PATH_STEP.match(path, at)
        if step is None or (at == 0 and path.startswith(".")):
            raise Invalid(f"Extract path '{path[:200]}' is not a path like values.a[0].b")
        key, index = step.groups()
        steps.append(int(index) if index is not None else key)
        at = step.end()
    if not steps or steps[0] not in EXTRACT_ROOTS:
        raise Invalid(
            f"Extract path '{path[:200]}' must start with one of: {', '.join(EXTRACT_ROOTS)}"
        )
    return steps


def extracted(row: Row, paths: dict[str, list[str | int]]) -> dict[str, Any]:
    """Each alias's value at its path in the thread, or None where the path leads nowhere."""
    out: dict[str, Any] = {}
    for alias, steps in paths.items():
        value: Any = row
        for step in steps:
            if (
                isinstance(step, int)
                and isinstance(value, list)
                and -len(value) <= step < len(value)
            ):
                value = value[step]
            elif isinstance(step, str) and isinstance(value, dict):
                value = value.get(step)
            else:
                value = None
            if value is None:
                break
        out[alias] = value
    return out


async def create(
    c: Container,
    *,
    thread_id: str | None,
    metadata: dict[str, Any] | None,
    if_exists: str,
    ttl: dict[str, Any] | None = None,
    graph_id: str | None = None,
) -> Row:
    if thread_id is not None:  # an id made here names no thread yet: nothing to look up
        existing = await c.threads.get(thread_id)
        if existing is not None:
            if if_exists == "do_nothing":
                return existing
            raise Conflict(f"Thread with ID {thread_id} already exists")
    thread_id = thread_id or str(uuid.uuid4())
    metadata = dict(metadata or {})
    if graph_id:
        if graph_id not in c.registry:
            raise NotFound(f"Graph '{graph_id}' not found")
        metadata["graph_id"] = graph_id
    row = Threads.new_row(thread_id, metadata)
    if ttl:
        row["ttl"] = ttl
        row["expires_at"] = expiry(ttl)
    created = await c.threads.create(row)
    if created is not None:
        return created
    if if_exists == "do_nothing":
        found = await c.threads.get(thread_id)
        if found is not None:
            return found
    raise Conflict(f"Thread with ID {thread_id} already exists")


def expiry(ttl: dict[str, Any] | None) -> datetime | None:
    return utcnow() + timedelta(minutes=float(ttl["ttl"])) if ttl else None


async def get(c: Container, thread_id: str) -> Row:
    row = await c.threads.get(thread_id)
    if row is None:
        raise NotFound(f"Thread with ID {thread_id} not found")
    return row


async def patch(
    c: Container, thread_id: str, metadata: dict[str, Any], ttl: dict[str, Any] | None = None
) -> Row:
    row = await c.threads.patch_metadata(thread_id, metadata)
    if row is None:
        raise NotFound(f"Thread with ID {thread_id} not found")
    if ttl:
        async with c.db.begin() as conn:
            row = await Threads.set_fields(conn, thread_id, ttl=ttl, expires_at=expiry(ttl)) or row
    return row


async def delete(c: Container, thread_id: str) -> None:
    row = await get(c, thread_id)
    inflight = await c.runs.list_for_thread(thread_id, limit=1000, offset=0, status="running")
    for run in inflight:
        await c.broker.send_control(cancel_message(run["run_id"], "interrupt"))
    if not await c.threads.delete(row["thread_id"]):
        raise NotFound(f"Thread with ID {thread_id} not found")
    await c.checkpoints.delete_thread(thread_id)


def _checkpoint(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable", {})
    point = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    if conf.get("checkpoint_map"):
        point["checkpoint_map"] = conf["checkpoint_map"]
    return point


def snapshot_to_json(snapshot: Any) -> dict[str, Any]:
    tasks = []
    for task in snapshot.tasks:
        state = task.state
        checkpoint = None
        if state is not None and not isinstance(state, dict):
            state = snapshot_to_json(state)
        elif isinstance(state, dict):
            # A subgraph's state not fetched (subgraphs=False): only where it lives is known.
            checkpoint = _checkpoint(state)
            if checkpoint and checkpoint["checkpoint_id"] is None:
                del checkpoint["checkpoint_id"]
            state = None
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": serde.to_jsonable(list(getattr(task, "path", ()) or ())),
                "error": None if task.error is None else repr(task.error),
                "interrupts": [serde.to_jsonable(i) for i in task.interrupts],
                "checkpoint": checkpoint,
                "state": state,
                "result": serde.to_jsonable(getattr(task, "result", None)),
            }
        )
    checkpoint = _checkpoint(snapshot.config)
    parent = _checkpoint(snapshot.parent_config)
    return {
        "values": serde.to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": serde.to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [serde.to_jsonable(i) for i in getattr(snapshot, "interrupts", ())],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def empty_state(thread_id: str) -> dict[str, Any]:
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": None,
        "created_at": None,
        "checkpoint": None,
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }


async def state(
    c: Container, thread_id: str, *, subgraphs: bool = False, checkpoint_id: str | None = None
) -> dict[str, Any]:
    row = await get(c, thread_id)
    graph_id = (row["metadata"] or {}).get("graph_id")
    if not graph_id or graph_id not in c.registry:
        return empty_state(thread_id)
    graph = await c.registry.get(graph_id)
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    snapshot = await graph.aget_state({"configurable": configurable}, subgraphs=subgraphs)
    if snapshot.config is None and not snapshot.values:
        return empty_state(thread_id)
    return snapshot_to_json(snapshot)


async def expire_due(c: Container) -> int:
    """Delete threads whose time to live has run out since their last activity."""
    now = utcnow()
    deleted = 0
    for row in await c.threads.expired(now):
        due = row["updated_at"] + timedelta(minutes=float(row["ttl"]["ttl"]))
        if due > now or row["status"] == "busy":
            # Activity since the deadline was set pushes it back; a busy thread waits.
            later = max(due, now + timedelta(minutes=1))
            async with c.db.begin() as conn:
                await Threads.set_fields(
                    conn, row["thread_id"], expires_at=later, updated_at=row["updated_at"]
                )
            continue
        try:
            await delete(c, row["thread_id"])
            deleted += 1
        except NotFound:
            continue  # another process got there first
    return deleted
