"""Crons routes: runs on a schedule, stateless or on a thread."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from app.api.common import JSON, container
from app.api.models import MAX_OFFSET, MultitaskStrategy, StreamMode, _Body
from app.container import Container
from app.services import crons as service

router = APIRouter(tags=["crons"])

Json = dict[str, Any] | list[Any] | str | int | float | bool | None
SortBy = Literal[
    "cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"
]
# Any public field, or "now" (the server's time), as the SDK lists them.
SelectField = Literal[(*service.PUBLIC_FIELDS, "now")]  # type: ignore[valid-type]


class _RunFields(_Body):
    """What every run of the cron is created with."""

    input: Json = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = Field(default=None, min_length=1, max_length=65536)
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: bool | None = None  # deprecated in favour of durability


class ThreadCronCreate(_RunFields):
    assistant_id: str = Field(min_length=1)
    schedule: str = Field(min_length=1, max_length=255)
    timezone: str | None = Field(default=None, max_length=64)
    end_time: datetime | None = None
    enabled: bool = True
    multitask_strategy: MultitaskStrategy | None = None


class CronCreate(ThreadCronCreate):
    on_run_completed: Literal["delete", "keep"] = "delete"


class CronPatch(_RunFields):
    schedule: str | None = Field(default=None, min_length=1, max_length=255)
    timezone: str | None = Field(default=None, max_length=64)
    # Sent as null: no end time any more. Left out: unchanged.
    end_time: datetime | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool | None = None


class CronCount(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


class CronSearch(CronCount):
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: SortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[SelectField] | None = None


def _run_fields(body: _RunFields) -> dict[str, Any]:
    return body.model_dump(include=set(service.RUN_FIELDS), exclude_none=True)


async def _create(
    c: Container, thread_id: str | None, body: ThreadCronCreate, on_run_completed: str | None
) -> JSON:
    row = await service.create(
        c,
        thread_id=thread_id,
        assistant_id=body.assistant_id,
        schedule=body.schedule,
        timezone=body.timezone,
        end_time=body.end_time,
        enabled=body.enabled,
        metadata=body.metadata,
        on_run_completed=on_run_completed,
        run_fields={**_run_fields(body), "multitask_strategy": body.multitask_strategy},
    )
    return JSON(service.public(row))


@router.post("/runs/crons")
async def create_cron(body: CronCreate, c: Container = Depends(container)) -> JSON:
    """Each firing is a stateless run on a new thread, deleted afterwards unless `keep`."""
    return await _create(c, None, body, body.on_run_completed)


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: uuid.UUID, body: ThreadCronCreate, c: Container = Depends(container)
) -> JSON:
    return await _create(c, str(thread_id), body, None)


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, c: Container = Depends(container)) -> JSON:
    rows = await service.search(
        c,
        service.Filters(body.assistant_id, body.thread_id, body.enabled, body.metadata),
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    return JSON([service.public(r, body.select) for r in rows])


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, c: Container = Depends(container)) -> JSON:
    filters = service.Filters(body.assistant_id, body.thread_id, body.enabled, body.metadata)
    return JSON(await service.count(c, filters))


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: uuid.UUID, c: Container = Depends(container)) -> JSON:
    return JSON(service.public(await service.get(c, str(cron_id))))


@router.patch("/runs/crons/{cron_id}")
async def update_cron(
    cron_id: uuid.UUID, body: CronPatch, c: Container = Depends(container)
) -> JSON:
    changes = body.model_dump(exclude_unset=True)
    return JSON(service.public(await service.update(c, str(cron_id), changes)))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: uuid.UUID, c: Container = Depends(container)) -> Response:
    await service.delete(c, str(cron_id))
    return Response(status_code=204)
