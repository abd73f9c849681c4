"""The embedded store's SQLite runs on the event loop: the same SQLAlchemy statements and
transactions as through aiosqlite, without a thread per connection."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from app.store.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'runyard.db'}")
    yield database
    await database.engine.dispose()


async def test_statements_run_on_the_event_loop_thread(db: Database) -> None:
    assert db.engine.dialect.driver == "inline"
    threads = threading.active_count()
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        await conn.execute(
            text("INSERT INTO t VALUES (:k, :v)"), [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}]
        )
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT k, v FROM t ORDER BY k"))).all()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
    assert threading.active_count() == threads  # aiosqlite starts one per connection


async def test_a_failed_transaction_leaves_nothing(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    # The pool's connection is usable after the failure.
    async with db.single() as conn:
        await conn.execute(text("INSERT INTO t VALUES (2)"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT k FROM t"))).scalar() == 2
