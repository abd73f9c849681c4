"""Every query on the assistants and assistant_versions tables.

`assistants` holds the version in use; `assistant_versions` holds every version ever made,
the one in use included. Both change in the same transaction."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store import hot
from app.store.db import Database, as_utc, utcnow
from app.store.filters import json_contains
from app.store.tables import assistant_versions, assistants

# Built once: SQLAlchemy then skips building the statement and its cache key per call (about
# half of what a simple statement costs the embedded server). Postgres has store/hot.py,
# a SQLite file store/sqlite_hot.py.
_KEY = bindparam("key")
_GET_BY_ID_OR_GRAPH = (
    select(assistants)
    .where((assistants.c.assistant_id == _KEY) | (assistants.c.graph_id == _KEY))
    .order_by(
        assistants.c.assistant_id != _KEY,
        assistants.c.assistant_id != bindparam("prefer"),
        assistants.c.created_at,
    )
    .limit(1)
)

Row = dict[str, Any]

SORTABLE = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
# What a version carries of the assistant; set_latest copies exactly these back.
VERSIONED = ("graph_id", "name", "description", "config", "context", "metadata")
# Concurrent writers are serialized by a row lock; the primary key is the last line of
# defence, and a writer that loses on it just tries again with the next number.
VERSION_ATTEMPTS = 5


def _row(mapping: Any) -> Row:
    row = dict(mapping)
    for key in ("created_at", "updated_at"):
        if key in row:
            row[key] = as_utc(row[key])
    return row


def _version_row(row: Row, version: int, created_at: datetime) -> Row:
    return {
        "assistant_id": row["assistant_id"],
        "version": version,
        "created_at": created_at,
        **{key: row[key] for key in VERSIONED},
    }


# How many resolved assistants a process remembers for run creation (remembered() below).
REMEMBERED = 1024


class Assistants:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._remembered: OrderedDict[str, Row] = OrderedDict()

    # What run creation resolved an id or graph id to lately, to build the next run from
    # without reading the assistant first. Only a statement that checks the assistant is
    # unchanged may trust it (Runs.insert_with_thread with an AssistantGuard).

    def remembered(self, key: str) -> Row | None:
        return self._remembered.get(key)

    def remember(self, key: str, row: Row) -> None:
        self._remembered[key] = row
        self._remembered.move_to_end(key)
        if len(self._remembered) > REMEMBERED:
            self._remembered.popitem(last=False)

    def forget(self, key: str) -> None:
        self._remembered.pop(key, None)

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self.db.is_postgres else sqlite_insert)(table)

    async def ensure(self, row: Row) -> None:
        """Insert a system assistant and its first version unless they exist: several
        processes start at once, and one may have been deleted and come back."""
        async with self.db.begin() as conn:
            await conn.execute(
                self._insert(assistants)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["assistant_id"])
            )
            await conn.execute(
                self._insert(assistant_versions)
                .values(**_version_row(row, row["version"], row["created_at"]))
                .on_conflict_do_nothing(index_elements=["assistant_id", "version"])
            )

    async def create(self, row: Row) -> bool:
        """Insert a new assistant as version 1. False if the id is taken."""
        async with self.db.begin() as conn:
            inserted = await conn.execute(
                self._insert(assistants)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["assistant_id"])
            )
            if not inserted.rowcount:
                return False
            # Versions always go with their assistant; clear any a manual edit left behind.
            await conn.execute(
                delete(assistant_versions).where(
                    assistant_versions.c.assistant_id == row["assistant_id"]
                )
            )
            await conn.execute(
                assistant_versions.insert().values(**_version_row(row, 1, row["created_at"]))
            )
        return True

    async def get(self, assistant_id: str, *, prefer: str | None = None) -> Row | None:
        """By id, or by graph id: then `prefer` (the graph's default assistant) wins, and
        after it the oldest of the graph's assistants."""
        if self.db.is_postgres:
            async with self.db.raw() as con:
                record = await con.fetchrow(hot.GET_ASSISTANT, assistant_id, prefer or "")
            return dict(record) if record is not None else None
        if self.db.lite is not None:
            found = self.db.lite.get_assistant(assistant_id, prefer or "")
            return _row(found) if found else None
        async with self.db.read() as conn:
            result = await conn.execute(
                _GET_BY_ID_OR_GRAPH, {"key": assistant_id, "prefer": prefer or ""}
            )
            found = result.mappings().first()
        return _row(found) if found else None

    async def _locked(self, conn: AsyncConnection, assistant_id: str) -> Row | None:
        query = select(assistants).where(assistants.c.assistant_id == assistant_id)
        if self.db.is_postgres:
            # Writers of one assistant queue here, so each sees the versions the one before
            # it made. SQLite writers are serialized by Database.begin() already.
            query = query.with_for_update()
        found = (await conn.execute(query)).mappings().first()
        return _row(found) if found else None

    async def add_version(self, assistant_id: str, change: Callable[[Row], Row]) -> Row | None:
        """Make `change(current)` the assistant's next version and put it in use.
        None if the assistant does not exist."""
        for attempt in range(VERSION_ATTEMPTS):
            try:
                async with self.db.begin() as conn:
                    current = await self._locked(conn, assistant_id)
                    if current is None:
                        return None
                    newest = await conn.execute(
                        select(func.max(assistant_versions.c.version)).where(
                            assistant_versions.c.assistant_id == assistant_id
                        )
                    )
                    # After set_latest the one in use may be older than the newest.
                    version = max(newest.scalar() or 0, current["version"]) + 1
                    changed = change(current)
                    fields = {key: changed[key] for key in VERSIONED}
                    now = utcnow()
                    await conn.execute(
                        assistant_versions.insert().values(
                            assistant_id=assistant_id, version=version, created_at=now, **fields
                        )
                    )
                    return await self._put_in_use(conn, assistant_id, version, fields, now)
            except IntegrityError:
                if attempt == VERSION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def set_latest(self, assistant_id: str, version: int) -> Row | None:
        """Put an existing version back in use. None if the assistant or version is unknown."""
        async with self.db.begin() as conn:
            if await self._locked(conn, assistant_id) is None:
                return None
            found = (
                (
                    await conn.execute(
                        select(assistant_versions).where(
                            assistant_versions.c.assistant_id == assistant_id,
                            assistant_versions.c.version == version,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if found is None:
                return None
            fields = {key: found[key] for key in VERSIONED}
            return await self._put_in_use(conn, assistant_id, version, fields, utcnow())

    @staticmethod
    async def _put_in_use(
        conn: AsyncConnection, assistant_id: str, version: int, fields: Row, now: datetime
    ) -> Row:
        result = await conn.execute(
            update(assistants)
            .where(assistants.c.assistant_id == assistant_id)
            .values(version=version, updated_at=now, **fields)
            .returning(*assistants.c)
        )
        return _row(result.mappings().one())

    async def delete(self, assistant_id: str) -> bool:
        async with self.db.begin() as conn:
            await conn.execute(
                delete(assistant_versions).where(assistant_versions.c.assistant_id == assistant_id)
            )
            result = await conn.execute(
                delete(assistants).where(assistants.c.assistant_id == assistant_id)
            )
            return bool(result.rowcount)

    async def versions(
        self, assistant_id: str, *, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[Row]:
        query = (
            select(assistant_versions)
            .where(
                assistant_versions.c.assistant_id == assistant_id,
                json_contains(
                    assistant_versions.c.metadata, metadata, postgres=self.db.is_postgres
                ),
            )
            .order_by(assistant_versions.c.version.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    def _filters(
        self, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None
    ) -> list[ColumnElement]:
        out = [json_contains(assistants.c.metadata, metadata, postgres=self.db.is_postgres)]
        if graph_id:
            out.append(assistants.c.graph_id == graph_id)
        if name:
            # Substring, any case, with LIKE's wildcards taken literally.
            out.append(func.lower(assistants.c.name).contains(name.lower(), autoescape=True))
        return out

    async def search(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
    ) -> list[Row]:
        query = select(assistants).where(*self._filters(graph_id, name, metadata))
        column: Any = assistants.c[sort_by if sort_by in SORTABLE else "created_at"]
        if sort_by == "name":
            # Any case, and the same order in both databases (their collations differ).
            column = func.lower(column)
        # The id breaks ties, so pages never overlap or skip rows.
        direction = column.asc() if sort_order == "asc" else column.desc()
        query = query.order_by(direction, assistants.c.assistant_id).limit(limit).offset(offset)
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    async def count(
        self,
        *,
        graph_id: str | None,
        metadata: dict[str, Any] | None,
        name: str | None = None,
    ) -> int:
        query = (
            select(func.count())
            .select_from(assistants)
            .where(*self._filters(graph_id, name, metadata))
        )
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
