"""Assistants: a graph plus the config, context and metadata its runs start with.

Every configured graph gets a default (system) assistant whose id is derived from the graph
id. More can be created; each change makes a new version, and any version can be put back
in use. Deleting an assistant, the defaults included, is allowed as in LangGraph: a deleted
default comes back, as version 1, when a server process next starts (a Gunicorn worker
restarting included), since every process puts back the defaults that are missing."""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.pregel import Pregel

from app.agents.registry import default_assistant_id
from app.container import Container
from app.services import threads as thread_service
from app.services.errors import Conflict, Invalid, NotFound
from app.store.db import utcnow

Row = dict[str, Any]

DEFAULT_NAME = "Untitled"
# Version numbers are a 32-bit column; anything outside can only be unknown.
MAX_VERSION = 2**31 - 1
THREAD_PAGE = 100


async def ensure_defaults(c: Container) -> None:
    now = utcnow()
    for graph_id in c.registry.graph_ids:
        await c.assistants.ensure(
            {
                "assistant_id": default_assistant_id(graph_id),
                "graph_id": graph_id,
                "name": graph_id,
                "description": c.registry.description(graph_id),
                "config": {},
                "context": {},
                "metadata": {"created_by": "system"},
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )


def _not_found(assistant_id: str) -> NotFound:
    return NotFound(f"Assistant '{assistant_id[:80]}' not found")


def _require_graph(c: Container, graph_id: str) -> None:
    if graph_id not in c.registry:
        raise NotFound(
            f"Graph '{graph_id[:80]}' not found. Expected one of: {sorted(c.registry.graph_ids)}"
        )


async def get(c: Container, assistant_id: str) -> Row:
    """By assistant id, or by graph id (that graph's default assistant)."""
    if "\x00" in assistant_id or len(assistant_id) > 255:
        raise _not_found(assistant_id)
    row = await c.assistants.get(assistant_id, prefer=default_assistant_id(assistant_id))
    if row is None:
        raise _not_found(assistant_id)
    return row


async def for_run(c: Container, assistant_id: str) -> Row:
    """The assistant a run names. A name that is neither an assistant's id (a UUID) nor a
    graph's is a malformed request, answered 422 with the graphs to choose from, as
    LangGraph's server answers it; an unknown UUID, or a graph whose assistant was deleted,
    is a 404."""
    try:
        return await get(c, assistant_id)
    except NotFound:
        if _is_uuid(assistant_id) or assistant_id in c.registry:
            raise
    graphs = ", ".join(sorted(c.registry.graph_ids))
    raise Invalid(
        f"Invalid assistant: '{assistant_id[:80]}'. Must be either:\n"
        f"- A valid assistant UUID, or\n- One of the registered graphs: {graphs}"
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def create(
    c: Container,
    *,
    graph_id: str,
    assistant_id: uuid.UUID | None,
    config: dict[str, Any] | None,
    context: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    name: str | None,
    description: str | None,
    if_exists: str,
) -> Row:
    _require_graph(c, graph_id)
    now = utcnow()
    row = {
        "assistant_id": str(assistant_id or uuid.uuid4()),
        "graph_id": graph_id,
        "name": name or DEFAULT_NAME,
        "description": description,
        "config": config or {},
        "context": context or {},
        "metadata": metadata or {},
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    if await c.assistants.create(row):
        return row
    if if_exists == "do_nothing":
        existing = await c.assistants.get(row["assistant_id"])
        if existing is not None:
            return existing
        # Deleted between the two statements: nothing to hand back but the conflict.
    raise Conflict(f"Assistant {row['assistant_id']} already exists")


async def update(
    c: Container,
    assistant_id: str,
    *,
    graph_id: str | None,
    config: dict[str, Any] | None,
    context: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    name: str | None,
    description: str | None,
) -> Row:
    """A new version from the one in use: what is given replaces, except metadata, which
    is merged key by key (as LangGraph does)."""
    if graph_id is not None:
        _require_graph(c, graph_id)
    current = await get(c, assistant_id)

    def change(row: Row) -> Row:
        return {
            **row,
            "graph_id": graph_id if graph_id is not None else row["graph_id"],
            "config": config if config is not None else row["config"],
            "context": context if context is not None else row["context"],
            "metadata": {**(row["metadata"] or {}), **(metadata or {})},
            "name": name or row["name"],
            "description": description if description is not None else row["description"],
        }

    updated = await c.assistants.add_version(current["assistant_id"], change)
    if updated is None:
        raise _not_found(assistant_id)
    return updated


async def set_latest(c: Container, assistant_id: str, version: int) -> Row:
    current = await get(c, assistant_id)
    found = None
    if 1 <= version <= MAX_VERSION:
        found = await c.assistants.set_latest(current["assistant_id"], version)
    if found is None:
        raise NotFound(f"Version {version} not found for assistant {current['assistant_id']}")
    return found


async def versions(
    c: Container, assistant_id: str, *, metadata: dict[str, Any] | None, limit: int, offset: int
) -> list[Row]:
    current = await get(c, assistant_id)
    return await c.assistants.versions(
        current["assistant_id"], metadata=metadata, limit=limit, offset=offset
    )


async def delete(c: Container, assistant_id: str, *, delete_threads: bool) -> None:
    row = await get(c, assistant_id)
    if not await c.assistants.delete(row["assistant_id"]):
        raise _not_found(assistant_id)
    if delete_threads:
        # After the assistant is gone, so no new run can start a thread for it meanwhile.
        await _delete_threads_of(c, row["assistant_id"])


async def _delete_threads_of(c: Container, assistant_id: str) -> None:
    seen: set[str] = set()
    while True:
        page = await c.threads.search(
            metadata={"assistant_id": assistant_id},
            values=None,
            status=None,
            ids=None,
            limit=THREAD_PAGE,
            offset=0,
            sort_by="created_at",
            sort_order="asc",
        )
        fresh = [t["thread_id"] for t in page if t["thread_id"] not in seen]
        if not fresh:
            return
        for thread_id in fresh:
            seen.add(thread_id)
            try:
                await thread_service.delete(c, thread_id)
            except NotFound:
                pass  # deleted by someone else meanwhile


async def graph_of(c: Container, assistant_id: str) -> tuple[Row, Pregel]:
    row = await get(c, assistant_id)
    if row["graph_id"] not in c.registry:
        raise NotFound(f"Graph '{row['graph_id']}' of assistant '{assistant_id}' is not loaded")
    config = row["config"] or {}
    return row, await c.registry.get(row["graph_id"], config)


async def drawable(c: Container, assistant_id: str, xray: bool | int) -> dict[str, Any]:
    _, graph = await graph_of(c, assistant_id)
    drawn = await graph.aget_graph(xray=xray)
    return drawn.to_json()


async def schemas(c: Container, assistant_id: str) -> dict[str, Any]:
    row, graph = await graph_of(c, assistant_id)
    return {"graph_id": row["graph_id"], **schemas_of(graph)}


async def subgraphs(
    c: Container, assistant_id: str, *, namespace: str | None, recurse: bool
) -> dict[str, Any]:
    """{namespace: schemas} of the graph's subgraphs; namespaces nest as `parent|child`."""
    _, graph = await graph_of(c, assistant_id)
    return {
        name: schemas_of(sub)
        async for name, sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse)
    }


def schemas_of(graph: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, getter in (
        ("input_schema", "get_input_jsonschema"),
        ("output_schema", "get_output_jsonschema"),
        ("context_schema", "get_context_jsonschema"),
        ("config_schema", "get_config_jsonschema"),
    ):
        out[key] = _schema_or_none(getattr(graph, getter, None))
    out["state_schema"] = _state_schema(graph)
    return out


def _schema_or_none(getter: Any) -> Any:
    if getter is None:
        return None
    try:
        return getter()
    except Exception:
        return None


def _state_schema(graph: Any) -> Any:
    try:
        from pydantic import TypeAdapter

        schema = getattr(graph, "builder", None) and graph.builder.state_schema
        if schema is None:
            return None
        return TypeAdapter(schema).json_schema()
    except Exception:
        return None
