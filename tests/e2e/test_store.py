"""The Store (long-term memory) API through `langgraph-sdk`'s `client.store`, against the
embedded and the production server alike, and a graph that shares the store with the API."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from app.agents.config import ConfigError
from app.store.longterm import DEFAULT_SWEEP_MINUTES, read_store_options
from tests.support import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server) -> Any:
    return get_client(url=server.url)


def unique_root() -> str:
    # Sessions share databases: every test writes under a namespace of its own.
    return f"t{uuid.uuid4().hex}"


def when(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None, f"{stamp} has no UTC offset"
    return parsed


async def test_put_get_update_delete(client: Any, server: Server) -> None:
    ns = [unique_root(), "users", "alice"]
    await client.store.put_item(ns, "prefs", {"theme": "dark", "size": 3})

    item = await client.store.get_item(ns, "prefs")
    assert item["namespace"] == ns and item["key"] == "prefs"
    assert item["value"] == {"theme": "dark", "size": 3}
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at"}
    first_created = when(item["created_at"])
    assert when(item["updated_at"]) >= first_created

    await client.store.put_item(ns, "prefs", {"theme": "light"})
    updated = await client.store.get_item(ns, "prefs", refresh_ttl=False)
    assert updated["value"] == {"theme": "light"}, "a put replaces the whole value"
    assert when(updated["updated_at"]) >= when(item["updated_at"])
    if server.mode == "serve":
        # LangGraph's SQLite store replaces the row on update, so only Postgres keeps it.
        assert when(updated["created_at"]) == first_created

    # Same key, other namespace: a different item.
    await client.store.put_item([*ns, "work"], "prefs", {"theme": "blue"})
    assert (await client.store.get_item(ns, "prefs"))["value"] == {"theme": "light"}

    await client.store.delete_item(ns, "prefs")
    assert await client.store.get_item(ns, "prefs") is None
    await client.store.delete_item(ns, "prefs")  # deleting what is gone is not an error
    assert (await client.store.get_item([*ns, "work"], "prefs"))["value"] == {"theme": "blue"}


async def test_put_with_ttl(client: Any) -> None:
    ns = [unique_root(), "ttl"]
    await client.store.put_item(ns, "short", {"v": 1}, ttl=60)
    item = await client.store.get_item(ns, "short", refresh_ttl=True)
    assert item["value"] == {"v": 1}


async def test_missing_item_is_null(client: Any, server: Server) -> None:
    """As LangGraph's server answers it: 200 with `null`, not a 404."""
    assert await client.store.get_item([unique_root(), "nobody"], "nothing") is None
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/store/items", params={"namespace": "a.b", "key": "none"})
    assert (response.status_code, response.json()) == (200, None)


async def test_search_prefix_filter_and_paging(client: Any) -> None:
    root = unique_root()
    items = {
        ("a", "k1"): {"kind": "note", "score": 3},
        ("a", "k2"): {"kind": "todo", "score": 7},
        ("a", "deep", "k3"): {"kind": "note", "score": 10},
        ("b", "k4"): {"kind": "note", "score": 9, "tags": ["x", "y"]},
        ("b", "k5"): {"kind": "todo", "score": "high"},
    }
    for (*path, key), value in items.items():
        await client.store.put_item([root, *path], key, value)

    async def keys(prefix: list[str], **kw: Any) -> list[str]:
        found = await client.store.search_items(prefix, limit=100, **kw)
        for item in found["items"]:
            assert item["namespace"][: len(prefix)] == prefix
        return sorted(item["key"] for item in found["items"])

    assert await keys([root]) == ["k1", "k2", "k3", "k4", "k5"]
    assert await keys([root, "a"]) == ["k1", "k2", "k3"]
    assert await keys([root, "a", "deep"]) == ["k3"]
    assert await keys([root, "c"]) == []
    assert await keys([root], filter={"kind": "note"}) == ["k1", "k3", "k4"]
    assert await keys([root, "a"], filter={"kind": "note"}) == ["k1", "k3"]
    assert await keys([root], filter={"kind": "note", "score": 9}) == ["k4"]
    assert await keys([root], filter={"tags": ["x", "y"]}) == ["k4"]
    assert await keys([root], filter={"kind": {"$ne": "note"}}) == ["k2", "k5"]
    # Numbers compare as numbers (10 > 9), and a string field is not a number.
    assert await keys([root], filter={"score": {"$gt": 5}}) == ["k2", "k3", "k4"]
    assert await keys([root], filter={"score": {"$gte": 7, "$lt": 10}}) == ["k2", "k4"]
    assert await keys([root], filter={"score": {"$lte": 7}}) == ["k1", "k2"]

    # Semantic search is not configured: a query is answered by prefix and filter alone.
    with_query = await keys([root], filter={"kind": "todo"}, query="anything at all")
    assert with_query == ["k2", "k5"]

    pages = []
    for offset in (0, 2, 4, 6):
        page = await client.store.search_items([root], limit=2, offset=offset)
        pages.append([item["key"] for item in page["items"]])
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    seen = [key for page in pages for key in page]
    assert sorted(seen) == ["k1", "k2", "k3", "k4", "k5"], "pages overlap or skip items"

    default = await client.store.search_items([root])
    assert len(default["items"]) == 5
    # Found items carry a score, null without a semantic query, as LangGraph answers.
    assert all(item["score"] is None for item in default["items"])
    assert "score" not in await client.store.get_item([root, "a"], "k1")


async def test_list_namespaces(client: Any) -> None:
    root = unique_root()
    for path in (
        ["users", "u1", "memories"],
        ["users", "u2", "memories"],
        ["users", "u2", "prefs"],
        ["docs"],
    ):
        await client.store.put_item([root, *path], "k", {"v": 1})

    async def listed(**kw: Any) -> list[list[str]]:
        return (await client.store.list_namespaces(**kw))["namespaces"]

    every = [
        [root, "docs"],
        [root, "users", "u1", "memories"],
        [root, "users", "u2", "memories"],
        [root, "users", "u2", "prefs"],
    ]
    assert sorted(await listed(prefix=[root])) == every
    assert sorted(await listed(prefix=[root], max_depth=2)) == [[root, "docs"], [root, "users"]]
    assert sorted(await listed(prefix=[root], max_depth=3)) == [
        [root, "docs"],
        [root, "users", "u1"],
        [root, "users", "u2"],
    ]
    assert sorted(await listed(prefix=[root], suffix=["memories"])) == [
        [root, "users", "u1", "memories"],
        [root, "users", "u2", "memories"],
    ]
    assert await listed(prefix=[root, "users", "u2"], suffix=["prefs"]) == [
        [root, "users", "u2", "prefs"]
    ]
    assert await listed(prefix=[root, "nothing"]) == []
    first = await listed(prefix=[root], limit=2)
    rest = await listed(prefix=[root], limit=2, offset=2)
    assert len(first) == 2 and len(rest) == 2
    assert sorted(first + rest) == every


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a", ""], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a", 1], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["langgraph"], "key": "k", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k\u0000", "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k" * 1001, "value": {}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1, 2]}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {"x": "\u0000"}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {"n": 2**70}}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": 0}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": -5}),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": True}),
    ("DELETE", "/store/items", {"namespace": ["a.b"], "key": "k"}),
    ("DELETE", "/store/items", {"namespace": ["a"]}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a."]}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "limit": 0}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "offset": -1}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": {"x": {"$in": [1]}}}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": {"x'; --": 1}}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": {"x": {"$gt": {}}}}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": {"x": {"$gt": True}}}),
    ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": "kind"}),
    ("POST", "/store/namespaces", {"prefix": ["a.b"]}),
    ("POST", "/store/namespaces", {"prefix": ["a"], "max_depth": 0}),
    ("POST", "/store/namespaces", {"limit": 0}),
    ("POST", "/store/namespaces", {"suffix": [""]}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_REQUESTS)
async def test_bad_bodies_are_422(client: Any, method: str, path: str, body: dict) -> None:
    response = await client.http.client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"namespace": "a..b", "key": "k"},
        {"namespace": "", "key": "k"},
        {"namespace": "a"},
        {"key": "k"},
        {"namespace": "a", "key": ""},
        {"namespace": "a", "key": "k", "refresh_ttl": "maybe"},
    ],
)
async def test_bad_get_queries_are_422(client: Any, params: dict[str, str]) -> None:
    response = await client.http.client.get("/store/items", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_unparseable_values_are_422_and_store_nothing(client: Any) -> None:
    root = unique_root()
    raw = f'{{"namespace": ["{root}"], "key": "k", "value": {{"x": NaN}}}}'
    response = await client.http.client.put(
        "/store/items", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    deep: Any = 1
    for _ in range(150):
        deep = {"d": deep}
    response = await client.http.client.put(
        "/store/items", json={"namespace": [root], "key": "k", "value": deep}
    )
    assert response.status_code == 422, response.text
    assert await client.store.get_item([root], "k") is None
    listed = await client.store.list_namespaces(prefix=[root])
    assert listed["namespaces"] == []


async def test_graph_shares_the_store(client: Any) -> None:
    ns = [unique_root(), "memories"]
    await client.store.put_item(ns, "from_api", {"fact": "likes tea"})
    thread = await client.threads.create()
    out = await client.runs.wait(thread["thread_id"], "memo", input={"namespace": ns, "note": "hi"})
    assert out["recalled"] == {"fact": "likes tea"}, "the graph did not see the API's item"
    written = await client.store.get_item(ns, "from_graph")
    assert written["value"] == {"note": "hi"}
    found = await client.store.search_items(ns, filter={"note": "hi"})
    assert [item["key"] for item in found["items"]] == ["from_graph"]


# The `store` section of langgraph.json.


def write_config(tmp_path: Path, store: Any) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": "./g.py:g"}, "store": store}))
    return path


def test_store_config_ttl(tmp_path: Path) -> None:
    options = read_store_options(
        write_config(
            tmp_path,
            {"ttl": {"refresh_on_read": False, "default_ttl": 90, "sweep_interval_minutes": 2}},
        )
    )
    assert options.ttl == {"refresh_on_read": False, "default_ttl": 90, "sweep_interval_minutes": 2}
    assert options.sweep_minutes == 2
    assert not options.semantic_requested


def test_store_config_defaults(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text('{"graphs": {"g": "./g.py:g"}}')
    options = read_store_options(path)
    # Never an empty TTL config: LangGraph's stores only sweep expired items with one.
    assert options.ttl == {"refresh_on_read": True}
    assert options.sweep_minutes == DEFAULT_SWEEP_MINUTES
    semantic = read_store_options(
        write_config(tmp_path, {"index": {"embed": "openai:x", "dims": 3}})
    )
    assert semantic.semantic_requested


@pytest.mark.parametrize(
    "store",
    [
        "yes",
        {"ttl": "forever"},
        {"ttl": {"default_ttl": 0}},
        {"ttl": {"default_ttl": "10"}},
        {"ttl": {"sweep_interval_minutes": -1}},
        {"ttl": {"refresh_on_read": "no"}},
        {"index": ["embed"]},
    ],
)
def test_store_config_errors(tmp_path: Path, store: Any) -> None:
    with pytest.raises(ConfigError):
        read_store_options(write_config(tmp_path, store))
