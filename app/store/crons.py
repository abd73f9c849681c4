"""Every query on the crons table. `Crons.claim_due` hands the scheduler the crons whose time
has come, each to exactly one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.db import Database, as_utc, utcnow
from app.store.filters import json_contains
from app.store.tables import Timestamp, crons

Row = dict[str, Any]

SORTABLE = frozenset(
    {
        "cron_id",
        "assistant_id",
        "thread_id",
        "created_at",
        "updated_at",
        "next_run_date",
        "end_time",
    }
)

# Rows stay locked until the claiming transaction ends: another process skips them, and an
# update or delete of one of them waits until its firing is done.
_DUE_POSTGRES = text(
    """
    SELECT * FROM crons
    WHERE enabled AND next_run_date IS NOT NULL AND next_run_date <= now()
    ORDER BY next_run_date
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
).columns(*crons.c)

_DUE_SQLITE = (
    text(
        """
        SELECT * FROM crons
        WHERE enabled AND next_run_date IS NOT NULL AND next_run_date <= :now
        ORDER BY next_run_date
        LIMIT :limit
        """
    )
    .bindparams(bindparam("now", type_=Timestamp))
    .columns(*crons.c)
)


def _row(mapping: Any) -> Row:
    row = dict(mapping)
    for key in ("created_at", "updated_at", "end_time", "next_run_date"):
        row[key] = as_utc(row[key])
    return row


@dataclass
class Filters:
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


@dataclass
class Claim:
    """Due crons held by this process until the `claim_due` block ends."""

    rows: list[Row]
    _db: Database
    _conn: AsyncConnection | None  # Postgres: the transaction that holds the row locks

    async def advance(self, cron_id: str, next_run_date: datetime | None) -> None:
        """The firing is done (or skipped): the cron waits for its next slot (None: no more)."""
        query = update(crons).where(crons.c.cron_id == cron_id).values(next_run_date=next_run_date)
        await self._write(query)

    async def drop(self, cron_id: str) -> None:
        await self._write(delete(crons).where(crons.c.cron_id == cron_id))

    async def _write(self, query: Any) -> None:
        if self._conn is not None:
            await self._conn.execute(query)
            return
        async with self._db.begin() as conn:
            await conn.execute(query)


class Crons:
    def __init__(self, db: Database) -> None:
        self.db = db
        # SQLite has no row locks; it serves one process, so a lock in that process stands in
        # for them between the scheduler and the routes that change or delete a cron.
        self._guard = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Around a change to a cron: never in the middle of one of its firings."""
        if self.db.is_postgres:
            yield
            return
        async with self._guard:
            yield

    @contextlib.asynccontextmanager
    async def claim_due(self, limit: int) -> AsyncIterator[Claim]:
        """The oldest due crons, up to `limit`, locked for this process until the block ends.
        Leaving the block by an exception undoes its `advance`s: the crons stay due."""
        if self.db.is_postgres:
            async with self.db.begin() as conn:
                result = await conn.execute(_DUE_POSTGRES, {"limit": limit})
                yield Claim([_row(m) for m in result.mappings()], self.db, conn)
            return
        async with self._guard:
            async with self.db.read() as conn:
                result = await conn.execute(_DUE_SQLITE, {"now": utcnow(), "limit": limit})
                rows = [_row(m) for m in result.mappings()]
            yield Claim(rows, self.db, None)

    # -- rows ---------------------------------------------------------------------------

    async def insert(self, row: Row) -> Row:
        async with self.db.begin() as conn:
            result = await conn.execute(insert(crons).values(**row).returning(*crons.c))
            return _row(result.mappings().one())

    async def get(self, cron_id: str) -> Row | None:
        async with self.db.read() as conn:
            query = select(crons).where(crons.c.cron_id == cron_id)
            found = (await conn.execute(query)).mappings().first()
        return _row(found) if found else None

    @staticmethod
    async def get_for_update(conn: AsyncConnection, cron_id: str, *, lock: bool) -> Row | None:
        query = select(crons).where(crons.c.cron_id == cron_id)
        if lock:
            query = query.with_for_update()
        found = (await conn.execute(query)).mappings().first()
        return _row(found) if found else None

    @staticmethod
    async def set_fields(conn: AsyncConnection, cron_id: str, **values: Any) -> Row | None:
        values.setdefault("updated_at", utcnow())
        result = await conn.execute(
            update(crons).where(crons.c.cron_id == cron_id).values(**values).returning(*crons.c)
        )
        found = result.mappings().first()
        return _row(found) if found else None

    async def delete(self, cron_id: str) -> bool:
        async with self.db.begin() as conn:
            result = await conn.execute(delete(crons).where(crons.c.cron_id == cron_id))
            return bool(result.rowcount)

    # -- search -------------------------------------------------------------------------

    def _where(self, filters: Filters) -> list[Any]:
        clauses = [json_contains(crons.c.metadata, filters.metadata, postgres=self.db.is_postgres)]
        if filters.assistant_id is not None:
            clauses.append(crons.c.assistant_id == filters.assistant_id)
        if filters.thread_id is not None:
            clauses.append(crons.c.thread_id == filters.thread_id)
        if filters.enabled is not None:
            clauses.append(crons.c.enabled.is_(filters.enabled))
        return clauses

    async def search(
        self, filters: Filters, *, limit: int, offset: int, sort_by: str, sort_order: str
    ) -> list[Row]:
        column = crons.c[sort_by if sort_by in SORTABLE else "created_at"]
        order = column.asc() if sort_order == "asc" else column.desc()
        query = (
            select(crons)
            .where(*self._where(filters))
            # cron_id breaks ties so pages do not overlap.
            .order_by(order, crons.c.cron_id)
            .limit(limit)
            .offset(offset)
        )
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    async def count(self, filters: Filters) -> int:
        query = select(func.count()).select_from(crons).where(*self._where(filters))
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
