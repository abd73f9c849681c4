"""The engine, transactions, and schema migration (Alembic, serialized by an advisory lock)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_, greenlet_spawn

from app import serde
from app.store.sqlite_inline import inline_url

if TYPE_CHECKING:
    from app.store.sqlite_hot import SqliteHot

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
# Any fixed 64-bit number; every Runyard process agrees on it.
MIGRATION_LOCK_KEY = 0x52_75_6E_79_61_72_64
# A pooled Postgres connection idle longer than this is pinged before use. Pinging every
# checkout (pool_pre_ping) costs a round trip per transaction; a connection that was fine a
# moment ago is trusted, and if Postgres restarted meanwhile, the first statement fails as a
# disconnect, which discards the whole pool (callers on the run path retry).
PING_IDLE_SECS = 2.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything Runyard stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


T = TypeVar("T")


async def with_backoff(
    call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    clock: Callable[[], float],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException, float], None],
) -> T:
    """`call()`, made again after each failure of a `retry_on` kind, 0.1 s later and then
    twice as long each time up to 5 s, while the next attempt starts before `deadline` (on
    `clock`); then the last failure is raised. `on_retry(error, delay)` comes before each
    wait."""
    delay = 0.1
    while True:
        try:
            return await call()
        except retry_on as exc:
            if clock() + delay > deadline:
                raise
            on_retry(exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Database:
    """One engine per process. SQLite writes are serialized in-process: it has one writer anyway."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_postgres = url.startswith("postgresql")
        kwargs: dict[str, Any] = {
            "json_serializer": serde.dumps_str,
            "json_deserializer": serde.loads,
        }
        path = None
        if self.is_postgres:
            # Connections opened under load are kept, not closed after use (an overflow
            # connection costs a connect, TLS negotiation and codec set-up each time).
            kwargs.update(pool_size=pool_size, max_overflow=0)
        else:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(connect_args={"timeout": 30})
            url = inline_url(url)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock = asyncio.Lock()
        # The embedded store's run path, on a connection of its own (a file database only:
        # another connection to an in-memory one would open another database).
        self.lite: SqliteHot | None = None
        if not self.is_postgres and path and path != ":memory:":
            from app.store.sqlite_hot import SqliteHot  # it imports hot.py, which imports this

            self.lite = SqliteHot(path, self.engine.sync_engine.dialect)
        if self.is_postgres:
            # Reads and single-statement writes skip BEGIN/COMMIT: two round trips fewer.
            self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            event.listen(self.engine.sync_engine, "checkout", _ping_if_idle)
            event.listen(self.engine.sync_engine, "checkin", _note_checkin)
        else:
            self._autocommit = self.engine
            event.listen(self.engine.sync_engine, "connect", set_sqlite_pragmas)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction."""
        if self.is_postgres:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn

    @property
    def on_driver(self) -> bool:
        """Whether the run path's statements go on the driver itself (store/hot.py for
        Postgres, store/sqlite_hot.py for a SQLite file), not through SQLAlchemy."""
        return self.is_postgres or self.lite is not None

    @contextlib.asynccontextmanager
    async def lite_write(self) -> AsyncIterator[SqliteHot]:
        """The embedded store's run-path statements, for a write (store/sqlite_hot.py)."""
        assert self.lite is not None
        async with self._write_lock:
            yield self.lite

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Reads, each statement on its own (Postgres: autocommit, the same per-statement
        snapshots as READ COMMITTED, without BEGIN and ROLLBACK round trips)."""
        async with self._autocommit.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def single(self) -> AsyncIterator[AsyncConnection]:
        """One write statement, atomic by itself: committed as it runs in Postgres."""
        context = self._autocommit.connect() if self.is_postgres else self.begin()
        async with context as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def raw(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection (Postgres only; autocommit, as asyncpg is outside a
        transaction), for the hot statements (store/hot.py). Straight from the pool, with its
        checkout ping: no SQLAlchemy connection and isolation level set and reset around it.
        A disconnect discards the pool, as SQLAlchemy does for its own statements."""
        pooled = await self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        except _DISCONNECTS:
            await greenlet_spawn(pooled.invalidate)
            await self.engine.dispose(close=False)
            raise
        finally:
            await greenlet_spawn(pooled.close)  # back to the pool

    async def _select_one(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def ping(self) -> bool:
        try:
            await self._select_one()
            return True
        except Exception:
            return False

    async def wait_reachable(self, deadline: float, log: Any = None) -> None:
        """Block until the database answers, retrying with backoff until `deadline` (loop
        time), then raise what the last attempt raised. A worker restarted while Postgres is
        away waits for it instead of failing to boot (which stops all of Gunicorn)."""

        def note(exc: BaseException, delay: float) -> None:
            if log is not None and delay >= 0.8:
                log.warning("database unreachable (%s); retrying", exc)

        await with_backoff(
            self._select_one,
            deadline=deadline,
            clock=asyncio.get_running_loop().time,
            retry_on=Exception,
            on_retry=note,
        )

    async def retrying_outage(
        self, step: Callable[[], Awaitable[Any]], deadline: float, log: Any = None
    ) -> Any:
        """Run a start-up step; if it fails while the database is unreachable (a restart
        under a booting process), wait for the database until `deadline` (loop time) and run
        it again. A failure with the database up is the step's own and is raised."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await step()
            except Exception:
                if await self.ping() or loop.time() >= deadline:
                    raise
                if log is not None:
                    log.warning("database went away during start-up; waiting for it")
                await self.wait_reachable(deadline, log)

    async def dispose(self) -> None:
        if self.lite is not None:
            self.lite.close()
        await self.engine.dispose()

    async def migrate(
        self,
        *also: Callable[[], Awaitable[None]],
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Upgrade to head, then run `also` (checkpointer set-up), one process at a time.
        `on_wait` is called once if another process holds the migration lock."""
        async with self.engine.connect() as conn:
            if self.is_postgres:
                # Poll with try-lock in autocommit: a session blocked inside pg_advisory_lock
                # holds a snapshot, and the checkpointer's CREATE INDEX CONCURRENTLY in the
                # process that has the lock would wait for it forever.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                lock = text("SELECT pg_try_advisory_lock(:k)")
                while not (await conn.execute(lock, {"k": MIGRATION_LOCK_KEY})).scalar():
                    if on_wait is not None:
                        on_wait()
                        on_wait = None
                    await asyncio.sleep(0.1)
            try:
                await asyncio.to_thread(upgrade_to_head, self.url)
                for step in also:
                    await step()
            finally:
                if self.is_postgres:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY}
                    )


def _disconnect_errors() -> tuple[type[BaseException], ...]:
    try:
        import asyncpg
    except ImportError:  # SQLite only
        return (OSError,)
    return (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.OperatorInterventionError,
    )


_DISCONNECTS = _disconnect_errors()


def refuses_data(error: BaseException) -> bool:
    """Whether the database refused the values themselves (SQLSTATE class 22: a NUL character
    in a JSON string, a number out of range): sent again, they are refused again. asyncpg's and
    psycopg's errors carry the SQLSTATE; SQLAlchemy's carry the driver's as `orig`."""
    state = getattr(error, "sqlstate", None) or getattr(
        getattr(error, "orig", None), "sqlstate", None
    )
    return isinstance(state, str) and state.startswith("22")


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if record.driver_connection.is_closed():
        # The server closed it while it sat in the pool (a terminated backend, a restart),
        # and the driver has seen it: replace it without a round trip.
        raise exc.DisconnectionError("connection closed while idle in the pool")
    idle_since = record.info.get("checked_in_at")
    if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECS:
        return
    try:
        # One simple-protocol query on the driver: one round trip, nothing prepared. The
        # adapter's ping() wraps its query in BEGIN and ROLLBACK (for transaction-pooling
        # proxies, which a simple-protocol query does not need): three.
        await_(record.driver_connection.execute("SELECT 1"))
    except Exception as error:
        # The pool then connects afresh (and retries the checkout).
        raise exc.DisconnectionError(str(error)) from error


def set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_to_head(url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")
