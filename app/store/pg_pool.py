"""The psycopg pool LangGraph's Postgres checkpointer and store run on."""

from __future__ import annotations

from typing import Any


async def open_pool(uri: str, max_size: int) -> Any:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    # prepare_threshold=0: no server-side prepared statements, which poolers such as
    # PgBouncer in transaction mode cannot keep; check: a connection Postgres dropped (a
    # restart) is replaced instead of handed out.
    pool = AsyncConnectionPool(
        uri,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
        check=AsyncConnectionPool.check_connection,
    )
    await pool.open()
    return pool
