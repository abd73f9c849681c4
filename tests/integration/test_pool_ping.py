"""The Postgres pool's ping of connections that sat idle: a dead one is replaced at checkout,
a live one is kept, and one used a moment ago is trusted without a round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from app.settings import Settings
from app.store import db as db_module
from app.store.db import Database


@pytest.fixture
async def pool(own_pg_uri: str) -> AsyncIterator[Database]:
    database = Database(Settings(DATABASE_URI=own_pg_uri).sqlalchemy_url, pool_size=1)
    yield database
    await database.dispose()


async def _backend_pid(database: Database) -> int:
    async with database.read() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


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
    pool: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _backend_pid(pool)
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 0.0)
    assert await _backend_pid(pool) == first
    assert await _backend_pid(pool) == first


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    pool: Database, own_pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _backend_pid(pool)
    await _terminate(own_pg_uri, first)
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 3600.0)
    # Trusted: the first statement finds it dead (and the pool is then discarded).
    with pytest.raises(Exception, match="(?i)connection|terminat|closed"):
        await _backend_pid(pool)


async def test_a_disconnect_on_the_raw_path_discards_the_pool(
    pool: Database, own_pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pool.raw() as con:
        first = await con.fetchval("SELECT pg_backend_pid()")
    await _terminate(own_pg_uri, first)
    monkeypatch.setattr(db_module, "PING_IDLE_SECS", 3600.0)
    with pytest.raises(db_module._DISCONNECTS):
        async with pool.raw() as con:
            await con.fetchval("SELECT 1")
    async with pool.raw() as con:
        assert await con.fetchval("SELECT pg_backend_pid()") != first
    assert pool.engine.pool.checkedout() == 0
