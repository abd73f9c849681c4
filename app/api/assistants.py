"""Assistants routes, and the bodies they accept."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from app.api.common import JSON, container, selected
from app.api.models import MAX_OFFSET, _Body
from app.container import Container
from app.services import assistants as service

router = APIRouter(prefix="/assistants", tags=["assistants"])

SelectField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
SortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]


class AssistantCreate(_Body):
    graph_id: str = Field(min_length=1, max_length=255)
    # LangGraph requires a UUID here; anything else is a 422, not a stored oddity.
    assistant_id: uuid.UUID | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = Field(default=None, max_length=255)
    description: str | None = None


class AssistantPatch(_Body):
    graph_id: str | None = Field(default=None, min_length=1, max_length=255)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Field(default=None, max_length=255)
    description: str | None = None


class AssistantQuery(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: SortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[SelectField] | None = None


class AssistantCountQuery(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class VersionsQuery(_Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class SetLatest(_Body):
    version: int


def _public(row: dict) -> dict:
    return {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "config": row["config"] or {},
        "context": row["context"] or {},
        "metadata": row["metadata"] or {},
        "name": row["name"],
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "version": row["version"],
    }


def _public_version(row: dict) -> dict:
    # A version has no updated_at: it never changes once made.
    out = _public({**row, "updated_at": None})
    del out["updated_at"]
    return out


@router.post("")
async def create(body: AssistantCreate, c: Container = Depends(container)) -> JSON:
    row = await service.create(
        c,
        graph_id=body.graph_id,
        assistant_id=body.assistant_id,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        name=body.name,
        description=body.description,
        if_exists=body.if_exists,
    )
    return JSON(_public(row))


@router.post("/search")
async def search(body: AssistantQuery, c: Container = Depends(container)) -> JSON:
    rows = await c.assistants.search(
        graph_id=body.graph_id,
        name=body.name,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    if len(rows) < body.limit and (rows or body.offset == 0):
        total = body.offset + len(rows)  # a page short of its limit is the last: no count
    else:
        total = await c.assistants.count(
            graph_id=body.graph_id, name=body.name, metadata=body.metadata
        )
    # The SDK reads X-Pagination-Next as the offset of the next page, absent on the last.
    headers = {"X-Pagination-Total": str(total)}
    if body.offset + len(rows) < total and len(rows) == body.limit:
        headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return JSON([selected(_public(r), body.select) for r in rows], headers=headers)


@router.post("/count")
async def count(body: AssistantCountQuery, c: Container = Depends(container)) -> JSON:
    return JSON(
        await c.assistants.count(graph_id=body.graph_id, name=body.name, metadata=body.metadata)
    )


@router.get("/{assistant_id}")
async def get(assistant_id: str, c: Container = Depends(container)) -> JSON:
    return JSON(_public(await service.get(c, assistant_id)))


@router.patch("/{assistant_id}")
async def update(
    assistant_id: str, body: AssistantPatch, c: Container = Depends(container)
) -> JSON:
    row = await service.update(
        c,
        assistant_id,
        graph_id=body.graph_id,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        name=body.name,
        description=body.description,
    )
    return JSON(_public(row))


@router.delete("/{assistant_id}", status_code=204)
async def delete(
    assistant_id: str, delete_threads: bool = False, c: Container = Depends(container)
) -> Response:
    await service.delete(c, assistant_id, delete_threads=delete_threads)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def versions(
    assistant_id: str, body: VersionsQuery, c: Container = Depends(container)
) -> JSON:
    rows = await service.versions(
        c, assistant_id, metadata=body.metadata, limit=body.limit, offset=body.offset
    )
    return JSON([_public_version(r) for r in rows])


@router.post("/{assistant_id}/latest")
async def set_latest(assistant_id: str, body: SetLatest, c: Container = Depends(container)) -> JSON:
    return JSON(_public(await service.set_latest(c, assistant_id, body.version)))


@router.get("/{assistant_id}/graph")
async def graph(
    assistant_id: str, xray: int | bool = False, c: Container = Depends(container)
) -> JSON:
    return JSON(await service.drawable(c, assistant_id, xray))


@router.get("/{assistant_id}/schemas")
async def schemas(assistant_id: str, c: Container = Depends(container)) -> JSON:
    return JSON(await service.schemas(c, assistant_id))


@router.get("/{assistant_id}/subgraphs")
async def subgraphs(
    assistant_id: str, recurse: bool = False, c: Container = Depends(container)
) -> JSON:
    return JSON(await service.subgraphs(c, assistant_id, namespace=None, recurse=recurse))


@router.get("/{assistant_id}/subgraphs/{namespace:path}")
async def subgraphs_at(
    assistant_id: str, namespace: str, recurse: bool = False, c: Container = Depends(container)
) -> JSON:
    return JSON(await service.subgraphs(c, assistant_id, namespace=namespace, recurse=recurse))
