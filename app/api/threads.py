"""Threads routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel

from app.api.common import JSON, container, selected
from app.api.models import (
    StateQuery,
    ThreadCount,
    ThreadCreate,
    ThreadHistory,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
    ThreadStateUpdate,
)
from app.container import Container
from app.services import thread_state as state_service
from app.services import threads as service
from app.services.errors import Invalid
from app.stream.sse import sse_response
from app.stream.thread_relay import THREAD_STREAM_MODES, start_of, thread_frames

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("")
async def create(body: ThreadCreate, c: Container = Depends(container)) -> JSON:
    if body.thread_id is not None:
        body.thread_id = str(_uuid(body.thread_id))
    row = await service.create(
        c,
        thread_id=body.thread_id,
        metadata=body.metadata,
        if_exists=body.if_exists,
        ttl=body.ttl.model_dump() if body.ttl else None,
        graph_id=body.graph_id,
    )
    if body.supersteps:
        row = await state_service.seed(
            c, row, [s.model_dump(exclude_none=True) for s in body.supersteps]
        )
    return JSON(service.public(row))


@router.post("/prune")
async def prune(body: ThreadPrune, c: Container = Depends(container)) -> JSON:
    return JSON({"pruned_count": await state_service.prune(c, body.thread_ids, body.strategy)})


@router.post("/search")
async def search(body: ThreadSearch, c: Container = Depends(container)) -> JSON:
    rows = await c.threads.search(
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        ids=body.ids,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    found = [service.public(r) for r in rows]
    if not body.extract:
        return JSON([selected(t, body.select) for t in found])
    paths = {alias: service.extract_path(path) for alias, path in body.extract.items()}
    return JSON(
        [{**selected(t, body.select), "extracted": service.extracted(t, paths)} for t in found]
    )


@router.post("/count")
async def count(body: ThreadCount, c: Container = Depends(container)) -> JSON:
    return JSON(await c.threads.count(metadata=body.metadata, status=body.status))


@router.get("/{thread_id}")
async def get(thread_id: uuid.UUID, c: Container = Depends(container)) -> JSON:
    return JSON(service.public(await service.get(c, str(thread_id))))


@router.patch("/{thread_id}")
async def patch(thread_id: uuid.UUID, body: ThreadPatch, c: Container = Depends(container)) -> JSON:
    ttl = body.ttl.model_dump() if body.ttl else None
    return JSON(service.public(await service.patch(c, str(thread_id), body.metadata, ttl)))


@router.delete("/{thread_id}", status_code=204)
async def delete(thread_id: uuid.UUID, c: Container = Depends(container)) -> Response:
    await service.delete(c, str(thread_id))
    return Response(status_code=204)


@router.get("/{thread_id}/state")
async def state(
    thread_id: uuid.UUID, subgraphs: bool = False, c: Container = Depends(container)
) -> JSON:
    return JSON(await service.state(c, str(thread_id), subgraphs=subgraphs))


@router.get("/{thread_id}/state/{checkpoint_id}")
async def state_at(
    thread_id: uuid.UUID,
    checkpoint_id: str,
    subgraphs: bool = False,
    c: Container = Depends(container),
) -> JSON:
    return JSON(
        await service.state(c, str(thread_id), subgraphs=subgraphs, checkpoint_id=checkpoint_id)
    )


@router.post("/{thread_id}/state/checkpoint")
async def state_at_checkpoint(
    thread_id: uuid.UUID, body: dict, c: Container = Depends(container)
) -> JSON:
    query = StateQuery.model_validate(body)
    checkpoint = body.get("checkpoint") or {}
    return JSON(
        await service.state(
            c,
            str(thread_id),
            subgraphs=query.subgraphs,
            checkpoint_id=checkpoint.get("checkpoint_id"),
        )
    )


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: uuid.UUID, body: ThreadStateUpdate, c: Container = Depends(container)
) -> JSON:
    checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else {}
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = body.checkpoint_id
    return JSON(
        await state_service.update(
            c, str(thread_id), body.values, as_node=body.as_node, checkpoint=checkpoint or None
        )
    )


@router.post("/{thread_id}/history")
async def history(
    thread_id: uuid.UUID, body: ThreadHistory, c: Container = Depends(container)
) -> JSON:
    before = body.before
    return JSON(
        await state_service.history(
            c,
            str(thread_id),
            limit=body.limit,
            before=before.model_dump(exclude_none=True)
            if isinstance(before, BaseModel)
            else before,
            metadata=body.metadata,
            checkpoint=body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else None,
        )
    )


@router.get("/{thread_id}/history")
async def history_get(
    thread_id: uuid.UUID,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
    c: Container = Depends(container),
) -> JSON:
    return JSON(
        await state_service.history(
            c, str(thread_id), limit=limit, before=before, metadata=None, checkpoint=None
        )
    )


@router.post("/{thread_id}/copy")
async def copy(thread_id: uuid.UUID, c: Container = Depends(container)) -> JSON:
    return JSON(service.public(await state_service.copy(c, str(thread_id))))


@router.get("/{thread_id}/stream")
async def stream(
    thread_id: uuid.UUID,
    stream_mode: list[str] = Query(default=["run_modes"]),
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
    c: Container = Depends(container),
) -> Response:
    """Every run of the thread as it happens, one after another, until the client leaves."""
    await service.get(c, str(thread_id))
    modes = {m for m in stream_mode if m} or {"run_modes"}
    if unknown := modes - THREAD_STREAM_MODES:
        raise Invalid(f"unknown stream_mode {sorted(unknown)}; use {sorted(THREAD_STREAM_MODES)}")
    start = await start_of(c, str(thread_id), last_event_id)
    return sse_response(thread_frames(c, str(thread_id), modes, start))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid(f"thread_id must be a UUID, got {value!r}") from None
