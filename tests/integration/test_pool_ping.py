"""The Postgres pool's ping of connections that sat idle: a dead one is replaced at checkout,
a live one is kept, one used a moment ago is trusted without a round trip, and one the driver
already saw closed is replaced without one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from app.settings import Settings
from app.store import db as db_module
from app.store.db import Database
from tests.support import until


@pytest.fixture
async def pool(own_pg_uri: str) -> AsyncIterator[Database]:
    database = Database(Settings(DATABASE_URI=own_pg_uri).sqlalchemy_url, pool_size=1)
    yield database
    await database.dispose()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The checkout ping is the only caller of asyncpg's simple-query `execute` here
    (SQLAlchemy's statements go through prepared statements)."""
    seen: list[str] = []
    original = asyncpg.Connection.execute

    async def spy(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(query)
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "execute", spy)
    return seen


async def _backend_pid(database: Database) -> int:
    async with database.read() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def _driver_connection(database: Database) -> Any:
    async with database.read() as conn:
        return (await conn.get_raw_connection()).driver_connection


async def _until_driver_sees_close(driver: Any) -> None:
    """The server's FATAL message and its closing of the socket reach the driver in separate
    reads: a statement sent between them fails on a protocol state, not as a disconnect."""
    await until(driver.is_closed, "the driver to see the close", timeout=10, every=0.01)


async def _terminate(own_pg_uri: str, pid: int) -> None:
    other = Database(Settings(DATABASE_URI=own_pg_uri).sqlalchemy_url, pool_size=1)
    try:
        async with other.read() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # Until the backend is gone, a checkout could still find it alive.
            for _ in range(200):
                alive = await conn.execute(
                    text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                if alive.first() is None:
                    return
                await conn.execute(text("SELECT pg_sleep(0.01)"))
        raise AssertionError(f"backend {pid} still alive")
    finally:
        await other.dispose()


async def test_an_idle_connection_that_died_is_replaced_at_checkout(
    pool: Database, own_pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _backend_pid(pool)
    await _terminate(own_pg_uri, first)
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 0.0)
    assert await _backend_pid(pool) != first


async def test_an_idle_connection_that_answers_the_ping_is_kept(
    pool: Database, monkeypatch: pytest.MonkeyPatch, pings: list[str]
) -> None:
    first = await _backend_pid(pool)
    pings.clear()  # the engine's first connect runs its own set-up statements
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 0.0)
    assert await _backend_pid(pool) == first
    assert await _backend_pid(pool) == first
    assert pings == ["SELECT 1", "SELECT 1"]


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    pool: Database, monkeypatch: pytest.MonkeyPatch, pings: list[str]
) -> None:
    first = await _backend_pid(pool)
    pings.clear()
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 3600.0)
    assert await _backend_pid(pool) == first
    assert await _backend_pid(pool) == first
    assert pings == []


async def test_a_connection_the_driver_saw_closed_is_replaced_without_a_ping(
    pool: Database, own_pg_uri: str, monkeypatch: pytest.MonkeyPatch, pings: list[str]
) -> None:
    driver = await _driver_connection(pool)
    first = await _backend_pid(pool)
    await _terminate(own_pg_uri, first)
    await _until_driver_sees_close(driver)
    pings.clear()
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 3600.0)
    assert await _backend_pid(pool) != first
    assert pings == []


async def test_a_disconnect_on_the_raw_path_discards_the_pool(
    pool: Database, own_pg_uri: str
) -> None:
    with pytest.raises(db_module._DISCONNECTS):
        async with pool.raw() as con:
            first = await con.fetchval("SELECT pg_backend_pid()")
            await _terminate(own_pg_uri, first)
            await _until_driver_sees_close(con)
            await con.fetchval("SELECT 1")
    async with pool.raw() as con:
        assert await con.fetchval("SELECT pg_backend_pid()") != first
    assert pool.engine.pool.checkedout() == 0
