"""Request bodies, validated up front so bad input is a 422, never a run that fails later."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StreamMode = Literal[
    "values",
    "updates",
    "custom",
    "messages",
    "messages-tuple",
    "debug",
    "events",
    "tasks",
    "checkpoints",
]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]


INT64 = 2**63
MAX_OFFSET = 2**31 - 1


def check_storable(value: Any, path: str = "body") -> None:
    """Reject what the databases cannot store or compare, as a 422 rather than a 500:
    integers beyond 64 bits and strings (keys included) with NUL characters."""
    if _plainly_storable(value):
        return
    _walk(value, path)


def _plainly_storable(value: Any) -> bool:
    """Whether orjson's encoder, in C, vouches for `value` without the walk below: it refuses
    integers beyond 53 bits (strict) and anything but plain JSON types, and writes a NUL as the
    escape `\\u0000`. Any doubt (a model, a large integer, that escape or a string spelling
    it) leaves the answer, and the message naming where, to the walk. A long conversation's
    input (100 KB) took the walk 0.6 ms of CPU."""
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return b"\\u0000" not in encoded


def _walk(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise ValueError(f"{path}: integer out of the 64-bit range")
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: strings may not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, path)
            _walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name), f"{path}.{name}")


class _Body(BaseModel):
    # Newer clients may send fields this server does not know yet: ignore, don't fail.
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="after")
    def _storable(self) -> _Body:
        for name in type(self).model_fields:
            check_storable(getattr(self, name), name)
        return self


class CommandBody(_Body):
    update: dict[str, Any] | list[Any] | None = None
    resume: Any = None
    goto: Any = None


class CheckpointBody(_Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class RunCreate(_Body):
    assistant_id: str = Field(min_length=1)
    input: dict[str, Any] | list[Any] | str | int | float | bool | None = None
    command: CommandBody | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    on_disconnect: Literal["cancel", "continue"] = "continue"
    feedback_keys: list[str] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    after_seconds: float | None = Field(default=None, ge=0)
    checkpoint_id: str | None = None
    checkpoint: CheckpointBody | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    on_completion: Literal["delete", "keep"] = "delete"
    # An extension of the LangGraph API: higher runs are claimed first (never ahead of an
    # older pending run of the same thread).
    priority: int = Field(default=0, ge=-1000, le=1000)

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _empty_modes(cls, value: Any) -> Any:
        return value or "values"

    @field_validator("webhook")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("webhook must be an absolute http:// or https:// URL")
        return value


class ThreadTTL(_Body):
    """Minutes without activity after which the thread is deleted."""

    ttl: float = Field(gt=0, le=10_000_000)
    strategy: Literal["delete"] = "delete"


def _ttl_minutes(value: Any) -> Any:
    """A bare number of minutes is accepted too, as the SDK's `ttl=` argument means it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"ttl": value, "strategy": "delete"}
    return value


class StateUpdateItem(_Body):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    task_id: str | None = None


class Superstep(_Body):
    updates: list[StateUpdateItem] = Field(min_length=1)


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: ThreadTTL | None = None
    supersteps: list[Superstep] | None = None
    graph_id: str | None = None

    _ttl = field_validator("ttl", mode="before")(staticmethod(_ttl_minutes))


class ThreadPatch(_Body):
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl: ThreadTTL | None = None

    _ttl = field_validator("ttl", mode="before")(staticmethod(_ttl_minutes))


class CheckpointRef(_Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class ThreadStateUpdate(_Body):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


class ThreadHistory(_Body):
    limit: int = Field(default=10, ge=1, le=1000)
    before: str | CheckpointRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    select: list[str] | None = None


class ThreadPrune(_Body):
    thread_ids: list[str] = Field(max_length=10_000)
    strategy: Literal["delete", "keep_latest"] = "delete"


ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
    "error",
]
RunField = Literal[
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
]


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: ThreadStatus | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] = (
        "updated_at"
    )
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[ThreadField] | None = None
    # alias -> a path into a thread's values, metadata, config or interrupts
    extract: dict[str, str] | None = Field(default=None, max_length=10)


class ThreadCount(_Body):
    metadata: dict[str, Any] | None = None
    status: ThreadStatus | None = None


class StateQuery(_Body):
    subgraphs: bool = False


class RunSearch(_Body):
    """Runs across threads (an extension of the LangGraph API)."""

    metadata: dict[str, Any] | None = None
    status: RunStatus | None = None
    thread_id: str | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class BulkCancel(_Body):
    thread_id: str | None = None
    run_ids: list[str] | None = Field(default=None, max_length=10_000)
    status: Literal["pending", "running", "all"] | None = None

    @model_validator(mode="after")
    def _something_named(self) -> BulkCancel:
        if not (self.thread_id or self.run_ids or self.status):
            raise ValueError("give run_ids, a thread_id, or a status")
        return self
