"""Every query on the threads table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store import hot
from app.store.db import Database, as_utc, utcnow
from app.store.filters import json_contains
from app.store.runs import INFLIGHT
from app.store.tables import runs, threads

# Built once, for every temporary run's end (see the note in store/runs.py).
_INSERT = insert(threads).returning(*threads.c)
_DELETE_IF_IDLE = delete(threads).where(
    threads.c.thread_id == bindparam("thread_id"),
    ~select(runs.c.run_id)
    .where(runs.c.thread_id == bindparam("thread_id"), runs.c.status.in_(INFLIGHT))
    .exists(),
)
_GET = select(threads).where(threads.c.thread_id == bindparam("thread_id"))
_GET_FOR_UPDATE = _GET.with_for_update()
# A thread taking a new run (the embedded create; Postgres inserts the run and updates the
# thread in one statement).
_MARK_BUSY = (
    update(threads)
    .where(threads.c.thread_id == bindparam("m_thread_id"))
    .values(status="busy", metadata=bindparam("m_metadata"), updated_at=bindparam("m_now"))
)
# A thread's fields once a run of it ended (the embedded finalize; Postgres settles the
# thread in the run's own statement).
_SETTLE = (
    update(threads)
    .where(threads.c.thread_id == bindparam("s_thread_id"))
    .values(
        status=bindparam("s_status"),
        values=bindparam("s_values"),
        interrupts=bindparam("s_interrupts"),
        error=bindparam("s_error"),
        updated_at=bindparam("s_now"),
        state_updated_at=bindparam("s_now"),
    )
)

Row = dict[str, Any]

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
# A thread whose state never changed has no state_updated_at: it sorts by its creation.
_SORT_COLUMNS = {
    **{name: threads.c[name] for name in SORTABLE - {"state_updated_at"}},
    "state_updated_at": func.coalesce(threads.c.state_updated_at, threads.c.created_at),
}


def _row(mapping: Any) -> Row:
    row = dict(mapping)
    row["created_at"] = as_utc(row["created_at"])
    row["updated_at"] = as_utc(row["updated_at"])
    if row.get("state_updated_at") is not None:
        row["state_updated_at"] = as_utc(row["state_updated_at"])
    if row.get("expires_at") is not None:
        row["expires_at"] = as_utc(row["expires_at"])
    return row


def thread_status_after(
    run_status: str, interrupts: dict[str, Any], inflight: bool, pending_nodes: bool = False
) -> str:
    """A thread's status once one of its runs ended: `interrupted` while its graph waits
    (an interrupt, `interrupt_before`/`after`, or a cancelled run that left nodes to run), as
    LangGraph reports it."""
    if inflight:
        return "busy"
    if interrupts or (run_status in ("interrupted", "success") and pending_nodes):
        return "interrupted"
    if run_status in ("error", "timeout"):
        return "error"
    return "idle"


class Threads:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def new_row(
        thread_id: str, metadata: dict[str, Any] | None = None, *, temporary: bool = False
    ) -> Row:
        now = utcnow()
        return {
            "thread_id": thread_id,
            "created_at": now,
            "updated_at": now,
            "metadata": metadata or {},
            "status": "idle",
            "values": None,
            "interrupts": {},
            "config": {},
            "error": None,
            "temporary": temporary,
        }

    @staticmethod
    async def insert(conn: AsyncConnection, row: Row) -> Row:
        result = await conn.execute(_INSERT, row)
        return _row(result.mappings().one())

    async def create(self, row: Row) -> Row | None:
        """A thread on its own, committed, as stored; None if its id is taken. One statement
        on the driver itself (Postgres: asyncpg; a SQLite file: store/sqlite_hot.py)."""
        if self.db.is_postgres:
            sql, args = hot.insert_thread(row)
            try:
                async with self.db.raw() as con:
                    return dict(await con.fetchrow(sql, *args))
            except asyncpg.UniqueViolationError:
                return None
        if self.db.lite is not None:
            async with self.db.lite_write() as lite:
                stored = lite.insert_thread(row)
            return _row(stored) if stored is not None else None
        try:
            async with self.db.begin() as conn:
                return await self.insert(conn, row)
        except IntegrityError:
            return None

    @staticmethod
    async def get_for_update(conn: AsyncConnection, thread_id: str, *, lock: bool) -> Row | None:
        query = _GET_FOR_UPDATE if lock else _GET
        found = (await conn.execute(query, {"thread_id": thread_id})).mappings().first()
        return _row(found) if found else None

    async def get(self, thread_id: str) -> Row | None:
        if self.db.is_postgres:
            async with self.db.raw() as con:
                record = await con.fetchrow(hot.GET_THREAD, thread_id)
            return dict(record) if record is not None else None
        if self.db.lite is not None:
            found = self.db.lite.get_thread(thread_id)
            return _row(found) if found else None
        async with self.db.read() as conn:
            found = (await conn.execute(_GET, {"thread_id": thread_id})).mappings().first()
        return _row(found) if found else None

    @staticmethod
    async def set_fields(conn: AsyncConnection, thread_id: str, **values: Any) -> Row | None:
        values.setdefault("updated_at", utcnow())
        result = await conn.execute(
            update(threads)
            .where(threads.c.thread_id == thread_id)
            .values(**values)
            .returning(*threads.c)
        )
        found = result.mappings().first()
        return _row(found) if found else None

    async def patch_metadata(self, thread_id: str, metadata: dict[str, Any]) -> Row | None:
        async with self.db.begin() as conn:
            current = await self.get_for_update(conn, thread_id, lock=self.db.is_postgres)
            if current is None:
                return None
            merged = {**(current["metadata"] or {}), **metadata}
            return await self.set_fields(conn, thread_id, metadata=merged)

    @staticmethod
    async def delete_row(conn: AsyncConnection, thread_id: str) -> None:
        """Only the thread: a temporary thread's runs stay readable after it goes."""
        await conn.execute(delete(threads).where(threads.c.thread_id == thread_id))

    @staticmethod
    async def mark_busy(
        conn: AsyncConnection, thread_id: str, metadata: dict[str, Any] | None
    ) -> None:
        await conn.execute(
            _MARK_BUSY, {"m_thread_id": thread_id, "m_metadata": metadata, "m_now": utcnow()}
        )

    @staticmethod
    async def settle(
        conn: AsyncConnection,
        thread_id: str,
        *,
        status: str,
        values: Any,
        interrupts: dict[str, Any],
        error: Any,
    ) -> None:
        await conn.execute(
            _SETTLE,
            {
                "s_thread_id": thread_id,
                "s_status": status,
                "s_values": values,
                "s_interrupts": interrupts,
                "s_error": error,
                "s_now": utcnow(),
            },
        )

    @staticmethod
    async def delete_if_idle(conn: AsyncConnection, thread_id: str) -> bool:
        """Delete the thread unless a run of it is pending or running; whether it was."""
        result = await conn.execute(_DELETE_IF_IDLE, {"thread_id": thread_id})
        return bool(result.rowcount)

    async def delete(self, thread_id: str) -> bool:
        async with self.db.begin() as conn:
            await conn.execute(delete(runs).where(runs.c.thread_id == thread_id))
            result = await conn.execute(delete(threads).where(threads.c.thread_id == thread_id))
            return bool(result.rowcount)

    async def existing_ids(self, thread_ids: Sequence[str]) -> list[str]:
        """The ids among `thread_ids` that name a thread, in the order given."""
        found: set[str] = set()
        async with self.db.read() as conn:
            for start in range(0, len(thread_ids), 500):
                chunk = list(thread_ids[start : start + 500])
                query = select(threads.c.thread_id).where(threads.c.thread_id.in_(chunk))
                found.update(str(t) for t in (await conn.execute(query)).scalars())
        return [t for t in dict.fromkeys(thread_ids) if t in found]

    async def expired(self, now: datetime, limit: int = 100) -> list[Row]:
        query = (
            select(threads)
            .where(threads.c.expires_at.is_not(None), threads.c.expires_at <= now)
            .order_by(threads.c.expires_at)
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
        ids: Sequence[str] | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> list[Row]:
        pg = self.db.is_postgres
        query = select(threads).where(
            threads.c.temporary.is_(False),
            json_contains(threads.c.metadata, metadata, postgres=pg),
            json_contains(threads.c["values"], values, postgres=pg),
        )
        if status:
            query = query.where(threads.c.status == status)
        if ids:
            query = query.where(threads.c.thread_id.in_(list(ids)))
        column = _SORT_COLUMNS[sort_by if sort_by in SORTABLE else "created_at"]
        query = query.order_by(column.asc() if sort_order == "asc" else column.desc())
        query = query.limit(limit).offset(offset)
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    async def count(self, *, metadata: dict[str, Any] | None, status: str | None) -> int:
        query = (
            select(func.count())
            .select_from(threads)
            .where(
                threads.c.temporary.is_(False),
                json_contains(threads.c.metadata, metadata, postgres=self.db.is_postgres),
            )
        )
        if status:
            query = query.where(threads.c.status == status)
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
