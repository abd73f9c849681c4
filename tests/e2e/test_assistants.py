"""Assistants through the official `langgraph-sdk`: create, versions, set latest, delete,
search, subgraphs, and what runs get from them, on the embedded and production servers.

The servers are shared with the rest of the session, so every test works on assistants it
creates (graph `echo`, unique metadata) and deletes them afterwards; the system assistants
are only ever changed on private servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.support import REDIS_URL, Server, postgres_database, redis_prefix

pytestmark = pytest.mark.e2e

ECHO = "echo"


@pytest.fixture
def client(server: Server) -> Any:
    return get_client(url=server.url)


@pytest.fixture
async def made(client: Any) -> AsyncIterator[list[str]]:
    """Ids of assistants a test created: deleted when it ends, whatever happened."""
    ids: list[str] = []
    yield ids
    for assistant_id in ids:
        try:
            await client.assistants.delete(assistant_id)
        except NotFoundError:
            pass


async def _create(client: Any, made: list[str], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("graph_id", ECHO)
    assistant = await client.assistants.create(**kwargs)
    made.append(assistant["assistant_id"])
    return assistant


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _tag() -> dict[str, str]:
    return {"test_tag": uuid.uuid4().hex}


async def test_create_and_get(client: Any, made: list[str]) -> None:
    tag = _tag()
    created = await _create(
        client,
        made,
        config={"configurable": {"a": 1}, "tags": ["t"]},
        context={"model": "m"},
        metadata={**tag, "n": 1},
        name="full",
        description="about it",
    )
    assert created["graph_id"] == ECHO and created["version"] == 1
    assert created["config"] == {"configurable": {"a": 1}, "tags": ["t"]}
    assert created["context"] == {"model": "m"}
    assert created["metadata"] == {**tag, "n": 1}
    assert (created["name"], created["description"]) == ("full", "about it")
    assert created["created_at"] == created["updated_at"]
    uuid.UUID(created["assistant_id"])
    assert await client.assistants.get(created["assistant_id"]) == created

    chosen = str(uuid.uuid4())
    bare = await _create(client, made, assistant_id=chosen)
    assert bare["assistant_id"] == chosen
    assert (bare["name"], bare["metadata"], bare["config"], bare["context"]) == (
        "Untitled",
        {},
        {},
        {},
    )
    assert bare["description"] is None

    # A graph id still means that graph's system assistant, however many others it has.
    default = await client.assistants.get(ECHO)
    assert default["metadata"] == {"created_by": "system"}
    assert default["assistant_id"] not in made


async def test_create_conflicts_and_bad_bodies(
    server: Server, client: Any, made: list[str]
) -> None:
    tag = _tag()
    first = await _create(client, made, metadata=tag, name="first")
    with pytest.raises(ConflictError):
        await client.assistants.create(ECHO, assistant_id=first["assistant_id"], name="second")
    same = await client.assistants.create(
        ECHO, assistant_id=first["assistant_id"], if_exists="do_nothing", name="second"
    )
    assert same == first
    system_id = (await client.assistants.get("counter"))["assistant_id"]
    with pytest.raises(ConflictError):
        await client.assistants.create("counter", assistant_id=system_id)
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph", metadata=tag)

    async with httpx.AsyncClient(base_url=server.url) as http:
        for body in (
            {},
            {"graph_id": None},
            {"graph_id": ECHO, "assistant_id": "my-assistant"},
            {"graph_id": ECHO, "config": 3},
            {"graph_id": ECHO, "context": [1]},
            {"graph_id": ECHO, "metadata": "x"},
            {"graph_id": ECHO, "if_exists": "sometimes"},
            {"graph_id": ECHO, "name": "n" * 256},
            {"graph_id": ECHO, "metadata": {**tag, "k": "a\u0000b"}},
            {"graph_id": ECHO, "metadata": {**tag, "k": 2**70}},
        ):
            answer = await http.post("/assistants", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert "detail" in answer.json()
    # Nothing half-made by the refused requests.
    assert await client.assistants.count(metadata=tag) == 1


async def test_update_makes_a_new_version(server: Server, client: Any, made: list[str]) -> None:
    tag = _tag()
    created = await _create(
        client,
        made,
        config={"configurable": {"a": 1}, "tags": ["t"]},
        context={"model": "m"},
        metadata={**tag, "n": 1},
        name="v1",
        description="first",
    )
    aid = created["assistant_id"]

    v2 = await client.assistants.update(aid, name="v2", metadata={"n": 2, "x": True})
    assert v2["version"] == 2 and v2["name"] == "v2"
    # Metadata merges; whatever is not given stays as it was.
    assert v2["metadata"] == {**tag, "n": 2, "x": True}
    assert v2["config"] == created["config"] and v2["context"] == created["context"]
    assert v2["description"] == "first" and v2["graph_id"] == ECHO
    assert v2["created_at"] == created["created_at"]
    assert _when(v2["updated_at"]) > _when(created["updated_at"])

    # Config and context, when given, replace the old ones whole.
    v3 = await client.assistants.update(
        aid, config={"configurable": {"b": 2}}, context={"temperature": 0.5}
    )
    assert v3["version"] == 3
    assert v3["config"] == {"configurable": {"b": 2}}
    assert v3["context"] == {"temperature": 0.5}
    assert v3["name"] == "v2" and v3["metadata"] == v2["metadata"]

    v4 = await client.assistants.update(aid, graph_id="counter", description="moved")
    assert (v4["version"], v4["graph_id"], v4["description"]) == (4, "counter", "moved")
    assert await client.assistants.get(aid) == v4

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert all(v["assistant_id"] == aid for v in versions)
    assert all("updated_at" not in v for v in versions)
    oldest = versions[-1]
    assert (oldest["name"], oldest["graph_id"], oldest["config"], oldest["context"]) == (
        "v1",
        ECHO,
        created["config"],
        created["context"],
    )
    assert oldest["metadata"] == {**tag, "n": 1}
    assert oldest["created_at"] == created["created_at"]
    assert versions[0]["created_at"] == v4["updated_at"]

    page = await client.assistants.get_versions(aid, limit=2, offset=1)
    assert [v["version"] for v in page] == [3, 2]
    with_x = await client.assistants.get_versions(aid, metadata={"x": True})
    assert [v["version"] for v in with_x] == [4, 3, 2]

    # Refused changes leave no version behind.
    with pytest.raises(NotFoundError):
        await client.assistants.update(aid, graph_id="no-such-graph")
    async with httpx.AsyncClient(base_url=server.url) as http:
        for body in (
            {"metadata": [1]},
            {"config": "x"},
            {"name": "n" * 256},
            {"graph_id": ""},
            {"context": {"k": "\u0000"}},
        ):
            answer = await http.patch(f"/assistants/{aid}", json=body)
            assert answer.status_code == 422, (body, answer.text)
        answer = await http.post(f"/assistants/{aid}/versions", json={"limit": 0})
        assert answer.status_code == 422
    assert len(await client.assistants.get_versions(aid)) == 4

    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.assistants.update(missing, name="x")
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(missing)


async def test_set_latest(server: Server, client: Any, made: list[str]) -> None:
    created = await _create(
        client, made, metadata=_tag(), name="one", context={"model": "m1"}, description="d1"
    )
    aid = created["assistant_id"]
    await client.assistants.update(aid, name="two", context={"model": "m2"})
    await client.assistants.update(aid, name="three", graph_id="counter")

    back = await client.assistants.set_latest(aid, 1)
    # Every field of the version comes back, the graph included.
    assert (back["version"], back["name"], back["graph_id"]) == (1, "one", ECHO)
    assert back["context"] == {"model": "m1"} and back["description"] == "d1"
    assert _when(back["updated_at"]) > _when(created["updated_at"])
    assert await client.assistants.get(aid) == back
    # Versions are never rewritten by it.
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [3, 2, 1]

    # The next change numbers after the newest version, built on the one in use.
    four = await client.assistants.update(aid, description="d4")
    assert (four["version"], four["name"], four["description"]) == (4, "one", "d4")

    for version in (99, 0, -1, 2**40):
        with pytest.raises(NotFoundError):
            await client.assistants.set_latest(aid, version)
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(str(uuid.uuid4()), 1)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for body in ({}, {"version": "x"}, {"version": None}):
            answer = await http.post(f"/assistants/{aid}/latest", json=body)
            assert answer.status_code == 422, (body, answer.text)
    assert (await client.assistants.get(aid))["version"] == 4


async def test_concurrent_updates_get_distinct_versions(client: Any, made: list[str]) -> None:
    aid = (await _create(client, made, metadata=_tag()))["assistant_id"]
    writers = 12
    answers = await asyncio.gather(
        *(client.assistants.update(aid, metadata={"writer": i}) for i in range(writers))
    )
    numbers = sorted(a["version"] for a in answers)
    assert numbers == list(range(2, writers + 2))
    versions = await client.assistants.get_versions(aid, limit=100)
    assert [v["version"] for v in versions] == list(range(writers + 1, 0, -1))
    # Each version holds the change of the writer that made it.
    by_version = {v["version"]: v["metadata"].get("writer") for v in versions}
    assert {by_version[a["version"]] for a in answers} == set(range(writers))
    assert (await client.assistants.get(aid))["version"] == writers + 1


async def test_delete(client: Any, made: list[str]) -> None:
    aid = (await _create(client, made, metadata=_tag()))["assistant_id"]
    await client.assistants.update(aid, name="changed")
    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.delete(aid)
    # Its id is free again, and starts over at version 1.
    again = await _create(client, made, assistant_id=aid)
    assert again["version"] == 1
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [1]


async def test_delete_with_threads(client: Any, made: list[str]) -> None:
    doomed = (await _create(client, made, metadata=_tag()))["assistant_id"]
    kept = (await _create(client, made, metadata=_tag()))["assistant_id"]
    ran = (await client.threads.create())["thread_id"]
    await client.runs.wait(ran, doomed, input={})
    assert (await client.threads.get(ran))["metadata"]["assistant_id"] == doomed
    tagged = (await client.threads.create(metadata={"assistant_id": doomed}))["thread_id"]
    other = (await client.threads.create(metadata={"assistant_id": kept}))["thread_id"]
    await client.assistants.delete(kept)
    # Without delete_threads the threads stay.
    assert (await client.threads.get(other))["thread_id"] == other

    await client.assistants.delete(doomed, delete_threads=True)
    for thread_id in (ran, tagged):
        with pytest.raises(NotFoundError):
            await client.threads.get(thread_id)
    assert (await client.threads.get(other))["thread_id"] == other
    await client.threads.delete(other)


async def test_search_and_count(server: Server, client: Any, made: list[str]) -> None:
    tag = _tag()
    suffix = tag["test_tag"]
    for name in (f"gamma-{suffix}", f"Alpha-{suffix}", f"beta-{suffix}"):
        await _create(client, made, metadata=tag, name=name)
    await _create(client, made, graph_id="counter", metadata=tag, name=f"delta-{suffix}")

    found = await client.assistants.search(metadata=tag, limit=100)
    assert len(found) == 4
    # Newest first by default.
    assert [a["name"].split("-")[0] for a in found] == ["delta", "beta", "Alpha", "gamma"]
    by_name = await client.assistants.search(
        metadata=tag, sort_by="name", sort_order="asc", limit=100
    )
    assert [a["name"].split("-")[0] for a in by_name] == ["Alpha", "beta", "delta", "gamma"]
    assert len(await client.assistants.search(metadata=tag, graph_id=ECHO)) == 3
    assert [a["name"] for a in await client.assistants.search(name=f"ALPHA-{suffix}")] == [
        f"Alpha-{suffix}"
    ]
    assert await client.assistants.search(name=f"%-{suffix}") == []

    first = await client.assistants.search(
        metadata=tag, sort_by="name", sort_order="asc", limit=3, response_format="object"
    )
    assert [a["name"] for a in first["assistants"]] == [a["name"] for a in by_name[:3]]
    assert first["next"] == "3"
    last = await client.assistants.search(
        metadata=tag, sort_by="name", sort_order="asc", limit=3, offset=3, response_format="object"
    )
    assert [a["name"] for a in last["assistants"]] == [by_name[3]["name"]]
    assert last["next"] is None

    picked = await client.assistants.search(metadata=tag, select=["assistant_id", "name"])
    assert all(set(a) == {"assistant_id", "name"} for a in picked) and len(picked) == 4

    assert await client.assistants.count(metadata=tag) == 4
    assert await client.assistants.count(metadata=tag, graph_id=ECHO) == 3
    assert await client.assistants.count(name=f"beta-{suffix}") == 1
    assert await client.assistants.count(metadata={**tag, "other": 1}) == 0

    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/assistants/search", json={"metadata": tag, "limit": 1})
        assert answer.headers["X-Pagination-Total"] == "4"
        assert answer.headers["X-Pagination-Next"] == "1"
        # The total of a last page (counted or not), and of a page past the end.
        for page, total, next_offset in (
            ({"limit": 10}, "4", None),
            ({"limit": 3, "offset": 3}, "4", None),
            ({"limit": 2, "offset": 2}, "4", None),
            ({"limit": 3, "offset": 10}, "4", None),
            ({"limit": 2, "offset": 1}, "4", "3"),
        ):
            answer = await http.post("/assistants/search", json={"metadata": tag, **page})
            assert answer.headers["X-Pagination-Total"] == total, page
            assert answer.headers.get("X-Pagination-Next") == next_offset, page
        for body in (
            {"sort_by": "zzz"},
            {"sort_order": "up"},
            {"limit": 0},
            {"offset": -1},
            {"select": ["nope"]},
            {"metadata": 1},
        ):
            answer = await http.post("/assistants/search", json=body)
            assert answer.status_code == 422, (body, answer.text)
        answer = await http.post("/assistants/count", json={"graph_id": 1})
        assert answer.status_code == 422
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.search(sort_by="nope")


async def test_unknown_ids_are_404(server: Server) -> None:
    routes = [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("DELETE", "?delete_threads=true", None),
        ("POST", "/versions", {}),
        ("POST", "/latest", {"version": 1}),
        ("GET", "/graph?xray=true", None),
        ("GET", "/schemas", None),
        ("GET", "/subgraphs", None),
        ("GET", "/subgraphs/child?recurse=true", None),
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        for unknown in (str(uuid.uuid4()), "no-such-graph", "a%00b", "x" * 300):
            for method, tail, body in routes:
                answer = await http.request(method, f"/assistants/{unknown}{tail}", json=body)
                assert answer.status_code == 404, (method, unknown, tail, answer.text)
                assert "detail" in answer.json()
        # Odd but storable metadata keys are fine in filters.
        for meta in ({'a"b': 1}, {"a.b": "x"}, {"$": [1, {"x": None}]}):
            answer = await http.post("/assistants/search", json={"metadata": meta})
            assert answer.status_code == 200 and answer.json() == [], (meta, answer.text)
            answer = await http.post("/assistants/count", json={"metadata": meta})
            assert answer.status_code == 200 and answer.json() == 0, (meta, answer.text)


async def test_subgraphs_and_xray(client: Any) -> None:
    subgraphs = await client.assistants.get_subgraphs("nested")
    assert list(subgraphs) == ["child"]
    child = subgraphs["child"]
    assert {"input_schema", "output_schema", "state_schema", "config_schema"} <= set(child)
    assert "count" in child["input_schema"]["properties"]
    assert await client.assistants.get_subgraphs("nested", namespace="child") == subgraphs
    assert await client.assistants.get_subgraphs("nested", recurse=True) == subgraphs
    assert await client.assistants.get_subgraphs("nested", namespace="nothing") == {}
    assert await client.assistants.get_subgraphs("counter") == {}
    with pytest.raises(NotFoundError):
        await client.assistants.get_subgraphs(str(uuid.uuid4()))

    flat = {n["id"] for n in (await client.assistants.get_graph("nested"))["nodes"]}
    assert "child" in flat and "child:tick" not in flat
    for xray in (True, 1):
        drawn = await client.assistants.get_graph("nested", xray=xray)
        ids = {n["id"] for n in drawn["nodes"]}
        assert "child:tick" in ids and "child" not in ids


async def test_runs_use_the_version_in_use(client: Any, made: list[str]) -> None:
    aid = (
        await _create(
            client,
            made,
            metadata=_tag(),
            config={"configurable": {"user": "u1", "shared": "assistant"}},
            context={"model": "m1", "temperature": 0.1},
        )
    )["assistant_id"]

    thread_id = (await client.threads.create())["thread_id"]
    on_thread = False

    async def seen(**run: Any) -> dict[str, Any]:
        # Stateless and thread runs take their assistant by different inserts: both checked.
        nonlocal on_thread
        on_thread = not on_thread
        return await client.runs.wait(thread_id if on_thread else None, aid, input={}, **run)

    # Several runs, so that each server process has built one from this version (and, in
    # Postgres, remembers it: the runs after the update must not be built from it).
    for _ in range(4):
        first = await seen()
    assert first["seen_configurable"]["user"] == "u1"
    assert first["seen_configurable"]["assistant_id"] == aid
    assert first["seen_context"] == {"model": "m1", "temperature": 0.1}

    # The run's own config and context go over the assistant's, key by key.
    over = await seen(config={"configurable": {"shared": "run"}}, context={"temperature": 0.9})
    assert over["seen_configurable"]["user"] == "u1"
    assert over["seen_configurable"]["shared"] == "run"
    assert over["seen_context"] == {"model": "m1", "temperature": 0.9}

    await client.assistants.update(
        aid, config={"configurable": {"user": "u2"}}, context={"model": "m2"}
    )
    for _ in range(4):
        second = await seen()
        assert second["seen_configurable"]["user"] == "u2"
        assert "shared" not in second["seen_configurable"]
        assert second["seen_context"] == {"model": "m2"}

    await client.assistants.set_latest(aid, 1)
    for _ in range(4):
        assert (await seen())["seen_context"] == {"model": "m1", "temperature": 0.1}
    await client.assistants.delete(aid)
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await seen()
    assert gone.value.response.status_code == 404


# --- system assistants: only on private servers, where deleting one harms no other test


@pytest.fixture(params=["embedded", "production"])
def private_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    if request.param == "embedded":
        with Server("dev") as server:
            yield server
        return
    with postgres_database() as pg_uri, redis_prefix() as prefix:
        env = {
            "DATABASE_URI": pg_uri,
            "REDIS_URI": REDIS_URL,
            "REDIS_KEY_PREFIX": prefix,
            "N_JOBS_PER_WORKER": "2",
        }
        with Server("serve", env=env, workers=2) as server:
            yield server


STARTED = "Application startup complete"


def _await_processes(server: Server, started: int, timeout: float = 60) -> None:
    """Until `started` server processes have finished starting: each one puts back missing
    system assistants as it starts, so one still starting would undo a deletion."""
    deadline = time.monotonic() + timeout
    while server.log().count(STARTED) < started:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{started} processes did not start:\n{server.log()}")
        time.sleep(0.1)


async def test_system_assistants_across_restarts(private_server: Server) -> None:
    """As in LangGraph, a system assistant can be changed and deleted; a server process that
    starts puts back a deleted one as version 1 and leaves a changed one as it is."""
    processes = 1 if private_server.mode == "dev" else 2
    _await_processes(private_server, processes)
    client = get_client(url=private_server.url)
    echo = await client.assistants.get(ECHO)
    counter = await client.assistants.get("counter")
    assert echo["metadata"] == {"created_by": "system"} and echo["version"] == 1
    assert [v["version"] for v in await client.assistants.get_versions(echo["assistant_id"])] == [1]

    await client.assistants.update(counter["assistant_id"], metadata={"changed": True})
    await client.assistants.update(echo["assistant_id"], name="renamed")
    await client.assistants.delete(echo["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(ECHO)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(None, ECHO, input={})
    assert refused.value.response.status_code == 404

    private_server.stop()
    private_server.start()
    _await_processes(private_server, 2 * processes)
    client = get_client(url=private_server.url)

    back = await client.assistants.get(ECHO)
    assert back["assistant_id"] == echo["assistant_id"]
    assert (back["version"], back["name"]) == (1, ECHO)
    assert [v["version"] for v in await client.assistants.get_versions(ECHO)] == [1]
    kept = await client.assistants.get("counter")
    assert kept["version"] == 2 and kept["metadata"]["changed"] is True
    assert [v["version"] for v in await client.assistants.get_versions("counter")] == [2, 1]
    assert (await client.runs.wait(None, ECHO, input={}))["seen_context"] == {}
