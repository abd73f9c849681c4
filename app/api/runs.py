"""Runs routes: on a thread, and stateless (a temporary thread)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.common import JSON, container, selected
from app.api.models import (
    MAX_OFFSET,
    BulkCancel,
    RunCreate,
    RunField,
    RunSearch,
    RunStatus,
    check_storable,
)
from app.container import Container
from app.observability.logs import bind_run
from app.services import runs as service
from app.services.errors import Invalid
from app.services.runs import RunRequest
from app.stream.relay import follow, is_finished_after, only_modes
from app.stream.sse import run_frames, sse_response

router = APIRouter(tags=["runs"])

MAX_BATCH = 1000


def _request(body: RunCreate) -> RunRequest:
    modes = body.stream_mode if isinstance(body.stream_mode, list) else [body.stream_mode]
    return RunRequest(
        assistant_id=body.assistant_id,
        input=body.input,
        command=body.command.model_dump(exclude_unset=True) if body.command else None,
        metadata=body.metadata,
        config=body.config,
        context=body.context,
        stream_mode=list(modes),
        stream_subgraphs=body.stream_subgraphs,
        stream_resumable=body.stream_resumable,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
        checkpoint_id=body.checkpoint_id,
        checkpoint=body.checkpoint.model_dump() if body.checkpoint else None,
        multitask_strategy=body.multitask_strategy,
        if_not_exists=body.if_not_exists,
        on_completion=body.on_completion,
        on_disconnect=body.on_disconnect,
        webhook=body.webhook,
        durability=body.durability,
        feedback_keys=body.feedback_keys,
        after_seconds=body.after_seconds,
        priority=body.priority,
    )


def _location(run: dict[str, Any], stateless: bool, follow: str | None = None) -> dict[str, str]:
    """Content-Location names the run; Location is where the SDK reconnects if cut off. As
    LangGraph's server does, a stateless stream's Location names the run alone: the SDK then
    takes a clean end of the stream for the end of the run, without asking about the run."""
    run_path = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    headers = {"Content-Location": f"/runs/{run['run_id']}" if stateless else run_path}
    if follow == "stream" and stateless:
        headers["Location"] = f"/runs/{run['run_id']}/stream"
    elif follow:
        headers["Location"] = f"{run_path}/{follow}"
    return headers


def _parse_last_event_id(value: str | None) -> int:
    if not value:
        return 0
    try:
        return max(int(value.split("-", 1)[0]), 0)
    except ValueError:
        return 0


async def _create(
    c: Container,
    thread_id: uuid.UUID | None,
    body: RunCreate,
    idempotency_key: str | None,
    *,
    bind: bool = True,
) -> tuple[dict[str, Any], RunRequest]:
    req = _request(body)
    run = await service.create(
        c,
        str(thread_id) if thread_id else None,
        req,
        stateless=thread_id is None,
        idempotency_key=idempotency_key,
    )
    if bind:  # the rest of this request's log lines are about this run
        bind_run(run["run_id"], run["thread_id"])
    return run, req


IDEMPOTENCY_KEY_MAX = 255

# The routes that create a run, and the join, read their request themselves: FastAPI's
# parameter machinery (the body parsed by the standard library's json, validated field by
# field through its wrappers, the header, the path and the container solved as dependencies)
# cost 180-200 µs a request in-process, against 54 for the body validated by pydantic from
# its bytes. OpenAPI still describes the body, the header, the path and the 422.
_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"anyOf": [{"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX}, {"type": "null"}]},
}
_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunCreate"}}},
}
_REFUSED = {
    "422": {
        "description": "Validation Error",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
}
STATELESS = {"requestBody": _BODY, "parameters": [_HEADER], "responses": _REFUSED}


def _path(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


ON_THREAD = {
    "requestBody": _BODY,
    "responses": _REFUSED,
    "parameters": [_path("thread_id"), _HEADER],
}
# The join is the second request of a run created in the background.
JOIN = {"responses": _REFUSED, "parameters": [_path("thread_id"), _path("run_id")]}


def _invalid(kind: str, loc: tuple[Any, ...], msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": msg}])


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("application/") and (
        kind == "application/json" or kind.endswith("+json")
    )


async def _run_create(request: Request) -> tuple[RunCreate, str | None]:
    """The body and the Idempotency-Key of a request that creates a run, refused as FastAPI
    refuses a bad one (422, the error's place under `body` or `header`)."""
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        raise _invalid(
            "string_too_long",
            ("header", "Idempotency-Key"),
            f"String should have at most {IDEMPOTENCY_KEY_MAX} characters",
        )
    raw = await request.body()
    if not raw:
        raise _invalid("missing", ("body",), "Field required")
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise _invalid("model_attributes_type", ("body",), "Input should be a JSON object")
    try:
        return RunCreate.model_validate_json(raw), key
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _path_uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise _invalid("uuid_parsing", ("path", name), "Input should be a valid UUID") from None


async def _create_from(
    request: Request, *, stateless: bool
) -> tuple[Container, dict[str, Any], RunRequest]:
    """The run a create route's request asks for, created: on the path's thread, or on a
    temporary one (`stateless`)."""
    thread_id = None if stateless else _path_uuid(request, "thread_id")
    body, key = await _run_create(request)
    c: Container = request.app.state.container
    run, req = await _create(c, thread_id, body, key)
    return c, run, req


def _stream(c: Container, run: dict[str, Any], req: RunRequest, stateless: bool) -> Response:
    async def cancel() -> None:
        await service.cancel(c, None, run["run_id"], wait=False, action="interrupt")

    frames = run_frames(
        run["run_id"],
        # Its first attempt: pending (0 attempts yet), or handed to a worker here (1).
        run["attempt"],
        follow(c, run["run_id"], fresh=True),
        on_disconnect=cancel if req.on_disconnect == "cancel" else None,
    )
    return sse_response(frames, headers=_location(run, stateless, "stream"))


async def _wait(c: Container, run: dict[str, Any], stateless: bool) -> JSON:
    final = await service.wait_terminal(c, run["run_id"], seen_running=True)
    body = service.wait_output(final) if final is not None else {}
    return JSON(body, headers=_location(run, stateless, "join"))


# -- stateless ----------------------------------------------------------------------------
# First in the file: routes are matched in the order they are declared, and these are the
# busiest.


@router.post("/runs", openapi_extra=STATELESS)
async def create_stateless(request: Request) -> JSON:
    _, run, _ = await _create_from(request, stateless=True)
    return JSON(service.public(run), headers=_location(run, True))


@router.post("/runs/stream", openapi_extra=STATELESS)
async def stream_stateless(request: Request) -> Response:
    c, run, req = await _create_from(request, stateless=True)
    return _stream(c, run, req, True)


@router.post("/runs/wait", openapi_extra=STATELESS)
async def wait_stateless(request: Request) -> JSON:
    c, run, _ = await _create_from(request, stateless=True)
    return await _wait(c, run, True)


# -- on a thread --------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs", openapi_extra=ON_THREAD)
async def create_run(request: Request) -> JSON:
    _, run, _ = await _create_from(request, stateless=False)
    return JSON(service.public(run), headers=_location(run, False))


@router.post("/threads/{thread_id}/runs/stream", openapi_extra=ON_THREAD)
async def stream_run(request: Request) -> Response:
    c, run, req = await _create_from(request, stateless=False)
    return _stream(c, run, req, False)


@router.post("/threads/{thread_id}/runs/wait", openapi_extra=ON_THREAD)
async def wait_run(request: Request) -> JSON:
    c, run, _ = await _create_from(request, stateless=False)
    return await _wait(c, run, False)


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: uuid.UUID,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    status: RunStatus | None = None,
    select: list[RunField] | None = Query(None),
    c: Container = Depends(container),
) -> JSON:
    rows = await service.list_for_thread(
        c, str(thread_id), limit=limit, offset=offset, status=status
    )
    return JSON([selected(service.public(r), select) for r in rows])


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(
    thread_id: uuid.UUID, run_id: uuid.UUID, c: Container = Depends(container)
) -> JSON:
    return JSON(service.public(await service.get(c, str(thread_id), str(run_id))))


@router.get("/threads/{thread_id}/runs/{run_id}/join", openapi_extra=JOIN)
async def join_run(request: Request) -> JSON:
    thread_id, run_id = _path_uuid(request, "thread_id"), _path_uuid(request, "run_id")
    row = await service.join(request.app.state.container, str(thread_id), str(run_id))
    return JSON(service.wait_output(row))


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    cancel_on_disconnect: bool = False,
    stream_mode: list[str] = Query(default=[]),
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
    c: Container = Depends(container),
) -> Response:
    return await _join_stream(
        c, str(thread_id), str(run_id), cancel_on_disconnect, stream_mode, last_event_id
    )


@router.get("/runs/{run_id}/stream")
async def join_stream_stateless(
    run_id: uuid.UUID,
    cancel_on_disconnect: bool = False,
    stream_mode: list[str] = Query(default=[]),
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
    c: Container = Depends(container),
) -> Response:
    """Where a stateless stream reconnects (its Location): the run by its id alone."""
    return await _join_stream(
        c, None, str(run_id), cancel_on_disconnect, stream_mode, last_event_id
    )


async def _join_stream(
    c: Container,
    thread_id: str | None,
    run_id: str,
    cancel_on_disconnect: bool,
    stream_mode: list[str],
    last_event_id: str | None,
) -> Response:
    run = await service.get(c, thread_id, run_id)
    after = _parse_last_event_id(last_event_id)
    if after and await is_finished_after(c, run["run_id"], after):
        # 204 tells a browser's EventSource the stream is over: no reconnect loop.
        return Response(status_code=204)

    async def cancel() -> None:
        await service.cancel(c, None, run["run_id"], wait=False, action="interrupt")

    wanted = {m for m in stream_mode if m}
    events = follow(c, run["run_id"], after)
    frames = run_frames(
        run["run_id"],
        run["attempt"],
        only_modes(events, wanted) if wanted else events,
        on_disconnect=cancel if cancel_on_disconnect else None,
    )
    return sse_response(frames)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    wait: bool = False,
    action: Literal["interrupt", "rollback"] = "interrupt",
    c: Container = Depends(container),
) -> Response:
    await service.cancel(c, str(thread_id), str(run_id), wait=wait, action=action)
    if wait:
        return JSON({})
    return Response(status_code=202)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(
    thread_id: uuid.UUID, run_id: uuid.UUID, c: Container = Depends(container)
) -> Response:
    await service.delete(c, str(thread_id), str(run_id))
    return Response(status_code=204)


# -- operators ----------------------------------------------------------------------------


@router.get("/runs")
async def search_runs(
    status: RunStatus | None = None,
    limit: int = Query(10, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    metadata: str | None = Query(
        default=None, description="A JSON object the runs' metadata must contain."
    ),
    thread_id: uuid.UUID | None = None,
    c: Container = Depends(container),
) -> JSON:
    """Runs across threads, newest first: `?status=error` lists dead runs."""
    rows = await service.search(
        c,
        status=status,
        limit=limit,
        offset=offset,
        metadata=_json_object(metadata, "metadata"),
        thread_id=str(thread_id) if thread_id else None,
    )
    return JSON([service.operator_view(r) for r in rows])


@router.post("/runs/search")
async def search_runs_post(body: RunSearch, c: Container = Depends(container)) -> JSON:
    rows = await service.search(
        c,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
        metadata=body.metadata,
        thread_id=body.thread_id,
    )
    return JSON([service.operator_view(r) for r in rows])


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    body: BulkCancel,
    action: Literal["interrupt", "rollback"] = "interrupt",
    c: Container = Depends(container),
) -> Response:
    await service.cancel_many(
        c, thread_id=body.thread_id, run_ids=body.run_ids, status=body.status, action=action
    )
    return Response(status_code=204)


@router.post("/runs/batch")
async def create_batch(body: list[RunCreate], c: Container = Depends(container)) -> JSON:
    if len(body) > MAX_BATCH:
        raise Invalid(f"a batch holds at most {MAX_BATCH} runs, got {len(body)}")
    created = []
    for item in body:
        run, _ = await _create(c, None, item, None, bind=False)
        created.append(service.public(run))
    return JSON(created)


def _json_object(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise Invalid(f"{name} must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise Invalid(f"{name} must be a JSON object")
    check_storable(parsed, name)
    return parsed


@router.post("/runs/{run_id}/requeue")
async def requeue_run(run_id: uuid.UUID, c: Container = Depends(container)) -> JSON:
    return JSON(service.public(await service.requeue(c, str(run_id))))
