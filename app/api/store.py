"""Store (long-term memory) routes, as `langgraph-sdk`'s `client.store` calls them."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from langgraph.store.base import NOT_PROVIDED, BaseStore
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.api.common import JSON, container
from app.api.models import INT64, MAX_OFFSET
from app.container import Container
from app.services import store as service

router = APIRouter(prefix="/store", tags=["store"])

# Postgres indexes (namespace, key) with a B-tree, whose entries must stay under ~2.7 kB.
MAX_KEY_BYTES = 1000
MAX_NAMESPACE_BYTES = 1000
# orjson, which answers every request, refuses to encode documents nested deeper than 255.
MAX_VALUE_DEPTH = 100
MAX_TTL_MINUTES = 2**31 - 1
FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
# Filters address top-level fields. Both stores splice the name into their SQL, and the
# SQLite one reads dots as a path, so the same name means the same field on both.
_FILTER_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _text(value: str, what: str) -> str:
    """A string both databases can store: no NUL, and encodable as UTF-8 (no lone surrogate)."""
    if "\x00" in value:
        raise ValueError(f"{what} may not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode") from None
    return value


def _label(value: str) -> str:
    if not value:
        raise ValueError("namespace labels may not be empty")
    if "." in value:
        raise ValueError(f"namespace label {value!r} may not contain '.'")
    return _text(value, "namespace labels")


def _key(value: str) -> str:
    if not value:
        raise ValueError("key may not be empty")
    _text(value, "key")
    if len(value.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"key may be at most {MAX_KEY_BYTES} bytes")
    return value


def _namespace(labels: list[str]) -> list[str]:
    if len(".".join(labels).encode()) > MAX_NAMESPACE_BYTES:
        raise ValueError(f"namespace may be at most {MAX_NAMESPACE_BYTES} bytes")
    return labels


def check_json(value: Any, what: str) -> None:
    """Reject what the databases (or the JSON encoder) would fail on later, as a 422: NaN and
    infinities, integers beyond 64 bits, unstorable strings, and very deep nesting."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_VALUE_DEPTH:
                raise ValueError(f"{what} is nested more than {MAX_VALUE_DEPTH} levels deep")
            if isinstance(item, dict):
                for k, v in item.items():
                    _text(k, f"{what} keys")
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            _text(item, f"{what} strings")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{what} may not hold NaN or infinite numbers")
        elif isinstance(item, int) and not isinstance(item, bool) and not -INT64 <= item < INT64:
            raise ValueError(f"{what} holds an integer beyond 64 bits")


def check_filter(value: dict[str, Any]) -> None:
    for field, condition in value.items():
        if not field or not set(field) <= _FILTER_KEY_CHARS:
            raise ValueError(
                f"filter field {field!r}: use a top-level field name of letters, digits, "
                "'_' and '-'"
            )
        if not isinstance(condition, dict):
            check_json(condition, f"filter {field!r}")
            continue
        # An object is a set of operators, as in LangGraph: {"score": {"$gt": 5}}.
        for op, operand in condition.items():
            if op not in FILTER_OPERATORS:
                raise ValueError(
                    f"filter {field!r}: unknown operator {op!r}; use one of "
                    f"{', '.join(sorted(FILTER_OPERATORS))}"
                )
            ranged = op not in ("$eq", "$ne")
            scalar = (str, int, float) if ranged else (str, int, float, bool, type(None))
            if not isinstance(operand, scalar) or (ranged and isinstance(operand, bool)):
                kind = "a number or a string" if ranged else "a string, number, boolean or null"
                raise ValueError(f"filter {field!r}: {op} takes {kind}")
            check_json(operand, f"filter {field!r}")


Label = Annotated[str, AfterValidator(_label)]
Namespace = Annotated[list[Label], Field(min_length=1), AfterValidator(_namespace)]
Key = Annotated[str, AfterValidator(_key)]


class _StoreBody(BaseModel):
    # Newer clients may send fields this server does not know yet: ignore, don't fail.
    model_config = ConfigDict(extra="ignore")


class PutItem(_StoreBody):
    namespace: Namespace
    key: Key
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(default=None, gt=0, le=MAX_TTL_MINUTES)

    @field_validator("value")
    @classmethod
    def _value(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json(value, "value")
        return value


class ItemRef(_StoreBody):
    namespace: Namespace
    key: Key


class ItemQuery(_StoreBody):
    """GET's query string: the SDK joins the namespace's labels with dots."""

    namespace: str
    key: Key
    refresh_ttl: bool | None = None

    @field_validator("namespace")
    @classmethod
    def _labels(cls, value: str) -> str:
        _namespace([_label(label) for label in value.split(".")])
        return value

    @property
    def labels(self) -> list[str]:
        return self.namespace.split(".")


class SearchItems(_StoreBody):
    namespace_prefix: Annotated[list[Label], AfterValidator(_namespace)] = Field(
        default_factory=list
    )
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    query: str | None = None  # accepted; semantic search is not supported (see services)
    refresh_ttl: bool | None = None

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            check_filter(value)
        return value or None


class ListNamespaces(_StoreBody):
    prefix: list[Label] | None = None
    suffix: list[Label] | None = None
    max_depth: int | None = Field(default=None, ge=1, le=MAX_OFFSET)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


async def store(c: Container = Depends(container)) -> BaseStore:
    if c.longterm is None or c.longterm.store is None:
        raise HTTPException(503, "the store is not available")
    return c.longterm.store


@router.put("/items", status_code=204)
async def put_item(body: PutItem, s: BaseStore = Depends(store)) -> Response:
    # An absent ttl takes the configured default; an explicit null means "never expires".
    ttl = body.ttl if "ttl" in body.model_fields_set else NOT_PROVIDED
    await service.put_item(s, body.namespace, body.key, body.value, index=body.index, ttl=ttl)
    return Response(status_code=204)


@router.get("/items")
async def get_item(q: Annotated[ItemQuery, Query()], s: BaseStore = Depends(store)) -> JSON:
    return JSON(await service.get_item(s, q.labels, q.key, refresh_ttl=q.refresh_ttl))


@router.delete("/items", status_code=204)
async def delete_item(body: ItemRef, s: BaseStore = Depends(store)) -> Response:
    await service.delete_item(s, body.namespace, body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: SearchItems, s: BaseStore = Depends(store)) -> JSON:
    return JSON(
        await service.search_items(
            s,
            body.namespace_prefix,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    )


@router.post("/namespaces")
async def list_namespaces(body: ListNamespaces, s: BaseStore = Depends(store)) -> JSON:
    return JSON(
        await service.list_namespaces(
            s,
            prefix=body.prefix,
            suffix=body.suffix,
            max_depth=body.max_depth,
            limit=body.limit,
            offset=body.offset,
        )
    )
