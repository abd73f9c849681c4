"""The embedded store's SQLite driver: the standard library's sqlite3, called on the event loop.

aiosqlite runs each SQLite call on a thread of its own and hands the result back to the event
loop: two thread wake-ups per call, and SQLAlchemy makes four or five calls per statement
(cursor, execute, fetch, close; commit and the pool's rollback on top). A `runs.wait` on the
embedded store made 58 of them, which cost more than the statements: SQLite answers these in
microseconds from a local file. This dialect is SQLAlchemy's own pysqlite one, declared
asynchronous so that the async engine accepts it: its calls simply never suspend.

Blocking the loop for a statement is safe here because nothing else writes to this file while
one of the process's statements waits: the process serializes its own write transactions
(Database.begin), WAL lets reads go on beside a write, and LangGraph's checkpointer and store
live in files of their own.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool
from sqlalchemy.util import await_

SCHEME = "sqlite+inline"


class _Cursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """What the async engine calls on a buffered result's cursor: nothing to release."""


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    driver = "inline"
    is_async = True
    supports_statement_cache = True

    # The async engine checks that each statement went through an await (a guard against a
    # blocking driver configured by mistake); a coroutine that is done at once passes it
    # without suspending the task.
    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        await_(_at_once())
        super().do_execute(cursor, statement, parameters, context)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        await_(_at_once())
        super().do_execute_no_params(cursor, statement, context)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        await_(_at_once())
        super().do_executemany(cursor, statement, parameters, context)

    def create_connect_args(self, url: Any) -> Any:
        args, kwargs = super().create_connect_args(url)
        return args, {**kwargs, "factory": _Connection}

    @classmethod
    def get_pool_class(cls, url: Any) -> type:
        # A waiter for a pooled connection must await it, not block the thread.
        return StaticPool if cls._is_url_file_db(url) is False else AsyncAdaptedQueuePool


async def _at_once() -> None:
    return None


registry.register("sqlite.inline", __name__, "InlineSQLiteDialect")


def inline_url(url: str) -> str:
    """The same database, through this driver (an aiosqlite URL, or a plain sqlite one)."""
    for prefix in ("sqlite+aiosqlite://", "sqlite+pysqlite://", "sqlite://"):
        if url.startswith(prefix):
            return SCHEME + "://" + url[len(prefix) :]
    return url
