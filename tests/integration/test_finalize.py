"""A run's finalize. The run's last checkpoint saves are stored by it: the run's end and its
checkpoints go to Postgres in one statement. When that statement fails, the saves go apart, as
during the run, and a save the database refuses fails the run (a run with status `error`), not
its finalize. What the database refuses in a run's outcome (a NUL character) fails the run
too, at once, where it used to be sent again until the finalize gave up, the run left
running. The server here is the real app, in this process, on a Postgres database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psycopg
import pytest
from sqlalchemy import text

from app.agents import save_queue
from app.settings import Settings
from app.store.db import Database, refuses_data
from app.store.pg_saver import PostgresSaver
from app.store.runs import Runs
from app.worker import pool
from tests.support import GRAPHS, in_process, postgres_database


@pytest.fixture
def fresh_pg_uri() -> Iterator[str]:
    """A database of the test's own: the session's `own_pg_uri` may hold runs that other
    tests left pending, which this server's worker would claim and finalize."""
    with postgres_database() as uri:
        yield uri


@pytest.fixture
async def client(
    fresh_pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    # Every save of a run waits for its end, however slow the machine: none goes out alone.
    monkeypatch.setattr(save_queue, "LINGER_SECS", 60.0)
    # A finalize that can never succeed gives up soon (the run is then left running).
    monkeypatch.setattr(pool, "FINALIZE_RETRY_SECS", 3.0)
    async with in_process(GRAPHS, tmp_path, fresh_pg_uri) as http:
        yield http


@pytest.fixture
def apart(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The batch documents stored by a statement of their own."""
    stored: list[str] = []
    store = PostgresSaver.store_document

    async def counted(self: PostgresSaver, document: str) -> None:
        stored.append(document)
        await store(self, document)

    monkeypatch.setattr(PostgresSaver, "store_document", counted)
    return stored


async def _run(client: httpx.AsyncClient, thread_id: str, steps: int) -> dict[str, Any]:
    r = await client.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "counter", "input": {"steps": steps}},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _thread(client: httpx.AsyncClient) -> str:
    r = await client.post("/threads", json={})
    assert r.status_code == 200, r.text
    return r.json()["thread_id"]


async def _last_run(client: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    r = await client.get(f"/threads/{thread_id}/runs")
    assert r.status_code == 200, r.text
    return r.json()[0]


async def test_a_runs_last_saves_are_stored_with_its_end(
    client: httpx.AsyncClient, apart: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    finishes: list[str | None] = []
    finish = Runs.finish_settling_thread

    async def seen(self: Runs, *args: Any, **kwargs: Any) -> Any:
        finishes.append(kwargs.get("saves"))
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(Runs, "finish_settling_thread", seen)
    thread_id = await _thread(client)
    assert (await _run(client, thread_id, steps=1))["count"] == 1
    assert len(finishes) == 1 and finishes[0] is not None
    assert apart == []
    # Stored: the next run on the thread starts from them, read from the database.
    assert (await _run(client, thread_id, steps=3))["count"] == 3
    state = (await client.get(f"/threads/{thread_id}/state")).json()
    assert state["values"]["count"] == 3 and state["next"] == []
    history = (await client.post(f"/threads/{thread_id}/history", json={"limit": 100})).json()
    # Two runs of one and two ticks: an input, a loop and a final checkpoint, then two more.
    assert [h["values"].get("count") for h in history][:3] == [3, 2, 1]
    assert apart == []


async def test_a_failed_finalize_stores_the_saves_apart(
    client: httpx.AsyncClient, apart: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = Runs.finish_settling_thread
    failed: list[str] = []

    async def fails_with_saves(self: Runs, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("saves") is not None:
            failed.append(kwargs["saves"])
            raise ConnectionResetError("the connection broke")
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(Runs, "finish_settling_thread", fails_with_saves)
    thread_id = await _thread(client)
    assert (await _run(client, thread_id, steps=2))["count"] == 2
    assert apart == failed and len(apart) == 1
    assert (await _last_run(client, thread_id))["status"] == "success"
    state = (await client.get(f"/threads/{thread_id}/state")).json()
    assert state["values"]["count"] == 2


async def test_saves_refused_apart_fail_the_run(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = Runs.finish_settling_thread

    async def fails_with_saves(self: Runs, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("saves") is not None:
            raise ValueError("invalid input syntax for type json")
        return await finish(self, *args, **kwargs)

    async def refused(self: PostgresSaver, document: str) -> None:
        raise ValueError("invalid input syntax for type json")

    monkeypatch.setattr(Runs, "finish_settling_thread", fails_with_saves)
    monkeypatch.setattr(PostgresSaver, "store_document", refused)
    thread_id = await _thread(client)
    r = await client.post(
        f"/threads/{thread_id}/runs/stream",
        json={"assistant_id": "counter", "input": {"steps": 1}, "stream_mode": ["values"]},
    )
    assert r.status_code == 200
    events = [line.removeprefix("event: ") for line in r.text.splitlines() if "event: " in line]
    assert events[-1] == "error"
    run = await _last_run(client, thread_id)
    assert run["status"] == "error"
    thread = (await client.get(f"/threads/{thread_id}")).json()
    assert thread["status"] == "error"


def _events(body: str) -> list[tuple[str, Any]]:
    """An SSE body's events: (name, data)."""
    events = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], orjson.loads(lines.get("data", "null"))))
    return events


@pytest.mark.parametrize(
    ("where", "given"),
    [
        ("thread", {}),
        ("thread", {"fail": True}),
        ("stateless", {}),
        ("stateless", {"fail": True}),
    ],
    ids=["state on a thread", "error on a thread", "state, stateless", "error, stateless"],
)
async def test_an_outcome_the_database_refuses_fails_the_run(
    client: httpx.AsyncClient, where: str, given: dict[str, Any]
) -> None:
    body = {"assistant_id": "unstorable", "input": given, "stream_mode": ["values"]}
    thread_id = await _thread(client) if where == "thread" else None
    path = f"/threads/{thread_id}/runs/stream" if thread_id else "/runs/stream"
    r = await asyncio.wait_for(client.post(path, json=body), 20)
    assert r.status_code == 200
    name, data = _events(r.text)[-1]
    assert name == "error"
    assert "could not be stored" in data["message"]
    if thread_id is not None:
        assert (await _last_run(client, thread_id))["status"] == "error"
        thread = (await client.get(f"/threads/{thread_id}")).json()
        assert thread["status"] == "error"
        # The thread is usable: another run on it goes to the end.
        again = await asyncio.wait_for(
            client.post(
                f"/threads/{thread_id}/runs/wait",
                json={"assistant_id": "unstorable", "input": {"text": "fine"}},
            ),
            20,
        )
        assert again.status_code == 200


async def test_refused_data_is_told_apart_from_every_driver(own_pg_uri: str) -> None:
    """The finalize takes its statements through asyncpg, SQLAlchemy or psycopg: each driver's
    error for a value Postgres refuses is recognised, and nothing else is."""
    nul = '{"text": "a\\u0000b"}'
    db = Database(Settings(DATABASE_URI=own_pg_uri).sqlalchemy_url, pool_size=1)
    errors: list[BaseException] = []
    try:
        async with db.raw() as con:
            with pytest.raises(Exception) as raw:
                await con.fetchval("SELECT $1::text::jsonb", nul)
            errors.append(raw.value)
        async with db.begin() as conn:
            with pytest.raises(Exception) as wrapped:
                await conn.execute(text("SELECT CAST(:v AS jsonb)"), {"v": nul})
            errors.append(wrapped.value)
    finally:
        await db.dispose()
    async with await psycopg.AsyncConnection.connect(own_pg_uri) as conn:
        with pytest.raises(Exception) as direct:
            await conn.execute("SELECT %s::jsonb", (nul,))
        errors.append(direct.value)
    assert [refuses_data(e) for e in errors] == [True, True, True]
    assert not refuses_data(ConnectionResetError("the connection broke"))
    assert not refuses_data(asyncpg.exceptions.UniqueViolationError("duplicate key"))
