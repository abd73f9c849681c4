"""Creating a thread: an id the server makes names no thread yet, so nothing is read first."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from app.services import threads as service
from app.services.errors import Conflict
from app.store.db import Database
from app.store.runs import Runs
from app.store.threads import Threads
from app.store.threads import _row as thread_row
from tests.integration.rows import pending_run, thread_through_sqlalchemy


class _Recorded:
    """An asyncpg connection whose statements are noted."""

    def __init__(self, con: Any, keep: Any) -> None:
        self._con, self._keep = con, keep

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._con, name)
        if name not in ("fetchrow", "fetch", "fetchval", "execute"):
            return call

        async def noted(sql: str, *args: Any, **kwargs: Any) -> Any:
            self._keep(None, None, sql)
            return await call(sql, *args, **kwargs)

        return noted


@pytest.fixture
def sent(pg: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL statements sent while the test runs, through SQLAlchemy or on asyncpg."""
    statements: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    raw = pg.raw

    @contextlib.asynccontextmanager
    async def recorded() -> AsyncIterator[Any]:
        async with raw() as con:
            yield _Recorded(con, keep)

    monkeypatch.setattr(pg, "raw", recorded)
    event.listen(pg.engine.sync_engine, "before_cursor_execute", keep)
    yield statements
    event.remove(pg.engine.sync_engine, "before_cursor_execute", keep)


def _container(pg: Database) -> Any:
    return SimpleNamespace(db=pg, threads=Threads(pg), registry={})


async def test_a_thread_without_an_id_is_one_insert(pg: Database, sent: list[str]) -> None:
    thread = await service.create(
        _container(pg), thread_id=None, metadata={"a": 1}, if_exists="raise"
    )
    assert sent == ["INSERT"]
    assert (await Threads(pg).get(thread["thread_id"]))["metadata"] == {"a": 1}


async def test_an_id_given_is_looked_up_first(pg: Database, sent: list[str]) -> None:
    c = _container(pg)
    thread_id = str(uuid.uuid4())
    await service.create(c, thread_id=thread_id, metadata={"a": 1}, if_exists="raise")
    assert sent == ["SELECT", "INSERT"]
    same = await service.create(c, thread_id=thread_id, metadata={"b": 2}, if_exists="do_nothing")
    assert same["metadata"] == {"a": 1}
    with pytest.raises(Conflict):
        await service.create(c, thread_id=thread_id, metadata=None, if_exists="raise")


async def test_a_created_thread_is_handed_back_as_stored(clean_db: Database) -> None:
    """On the driver itself (Postgres and a SQLite file alike): the row equals a later read,
    on the driver and through SQLAlchemy, and an id taken already creates nothing."""
    store = Threads(clean_db)
    # A stateless run's thread first: the same columns, inserted without reading them back.
    stateless = Threads.new_row(str(uuid.uuid4()), {"user": "ü", "n": None})
    await Runs(clean_db).insert_with_thread(stateless, pending_run(stateless["thread_id"]))
    row = Threads.new_row(str(uuid.uuid4()), {"user": "ü", "n": None})
    row.update(ttl={"ttl": 5, "strategy": "delete"}, expires_at=row["created_at"])
    created = await store.create(row)
    assert created is not None and created == await store.get(row["thread_id"])
    assert created == thread_row(await thread_through_sqlalchemy(clean_db, row["thread_id"]))
    assert created["metadata"] == {"user": "ü", "n": None} and created["values"] is None
    assert created["temporary"] is False and created["created_at"].tzinfo is not None
    assert await store.create(Threads.new_row(row["thread_id"], {"other": 1})) is None
    assert (await store.get(row["thread_id"]))["metadata"] == {"user": "ü", "n": None}
    plain = Threads.new_row(str(uuid.uuid4()))  # the stateless run's thread's columns exactly
    created = await store.create(plain)
    assert created is not None and created == await store.get(plain["thread_id"])
