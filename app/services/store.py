"""The /store operations: calls on LangGraph's store, answered in the SDK's shapes."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.store.base import NOT_PROVIDED, BaseStore, InvalidNamespaceError, Item, NotProvided

from app.services.errors import Invalid
from app.store.db import as_utc


def public(item: Item, *, found: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": as_utc(item.created_at),
        "updated_at": as_utc(item.updated_at),
    }
    if found:
        # A search's items carry their score, null but for a semantic search's, as
        # LangGraph's server answers; an item read by its key has none.
        out["score"] = getattr(item, "score", None)
    return out


async def put_item(
    store: BaseStore,
    namespace: list[str],
    key: str,
    value: dict[str, Any],
    *,
    index: Literal[False] | list[str] | None = None,
    ttl: float | None | NotProvided = NOT_PROVIDED,
) -> None:
    try:
        await store.aput(tuple(namespace), key, value, index=index, ttl=ttl)
    except InvalidNamespaceError as exc:
        raise Invalid(str(exc)) from None


async def get_item(
    store: BaseStore, namespace: list[str], key: str, *, refresh_ttl: bool | None = None
) -> dict[str, Any] | None:
    """None for an item that is not there: LangGraph's server answers it with `null`, and
    the clients hand that on (the JS client's `getItem` is typed `Item | null`)."""
    item = await store.aget(tuple(namespace), key, refresh_ttl=refresh_ttl)
    return None if item is None else public(item)


async def delete_item(store: BaseStore, namespace: list[str], key: str) -> None:
    """Deleting what is not there succeeds: the item is gone either way."""
    await store.adelete(tuple(namespace), key)


async def search_items(
    store: BaseStore,
    namespace_prefix: list[str],
    *,
    filter: dict[str, Any] | None,
    limit: int,
    offset: int,
    refresh_ttl: bool | None,
) -> dict[str, Any]:
    # No semantic index is configured, so a `query` is not passed on: the answer is the
    # namespace and filter match, newest first, as LangGraph's stores give it without one.
    items = await store.asearch(
        tuple(namespace_prefix),
        filter=filter,
        limit=limit,
        offset=offset,
        refresh_ttl=refresh_ttl,
    )
    return {"items": [public(i, found=True) for i in items]}


async def list_namespaces(
    store: BaseStore,
    *,
    prefix: list[str] | None,
    suffix: list[str] | None,
    max_depth: int | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    namespaces = await store.alist_namespaces(
        prefix=tuple(prefix) if prefix else None,
        suffix=tuple(suffix) if suffix else None,
        max_depth=max_depth,
        limit=limit,
        offset=offset,
    )
    return {"namespaces": [list(ns) for ns in namespaces]}
