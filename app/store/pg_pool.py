"""The psycopg pool LangGraph's Postgres checkpointer and store run on."""

from __future__ import annotations

import time
import weakref
from typing import Any

from app.store.db import PING_IDLE_SECS


class _IdleCheck:
    """Ping a connection before handing it out only if it sat idle for a while: a round trip
    per checkout otherwise, and a checkpointed run checks out several. A connection Postgres
    dropped (a restart) while idle is replaced instead of handed out; one that breaks in use
    fails that call, and psycopg's pool discards it."""

    def __init__(self) -> None:
        self._returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: Any) -> None:
        from psycopg_pool import AsyncConnectionPool

        returned = self._returned.get(conn)
        if returned is None or time.monotonic() - returned >= PING_IDLE_SECS:
            await AsyncConnectionPool.check_connection(conn)

    async def reset(self, conn: Any) -> None:
        self._returned[conn] = time.monotonic()


async def open_pool(uri: str, max_size: int) -> Any:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    # autocommit, prepare_threshold=0 and dict_row as LangGraph's Postgres savers expect.
    idle = _IdleCheck()
    pool = AsyncConnectionPool(
        uri,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
        check=idle.check,
        reset=idle.reset,
    )
    await pool.open()
    return pool
