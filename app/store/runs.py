"""Every query on the runs table. `Runs.next` is the claim: one statement in Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store import hot
from app.store.db import Database, as_utc, utcnow
from app.store.filters import json_contains
from app.store.tables import Timestamp, runs, threads

Row = dict[str, Any]

INFLIGHT = ("pending", "running")

_NEXT_SQLITE_PICK = text(hot.pick_eligible(":now")).bindparams(bindparam("now", type_=Timestamp))
# The statements every run executes, built once: SQLAlchemy then skips building each and its
# cache key per call (about half of what a simple statement costs the embedded server).
# Postgres runs its hot ones from store/hot.py, a SQLite file from store/sqlite_hot.py.
_INSERT = insert(runs).returning(*runs.c)
_INSERT_THREAD = insert(threads)
_GET = select(runs).where(runs.c.run_id == bindparam("run_id"))
_GET_ON_THREAD = _GET.where(runs.c.thread_id == bindparam("thread_id"))
_FINISH = (
    update(runs)
    .where(
        runs.c.run_id == bindparam("b_run_id"),
        runs.c.status == "running",
        runs.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        output=bindparam("b_output"),
        updated_at=bindparam("b_now"),
        ended_at=bindparam("b_now"),
        lease_owner=None,
        lease_expires_at=None,
    )
    .returning(*runs.c)
)
_INFLIGHT_OF_THREAD = (
    select(runs)
    .where(runs.c.thread_id == bindparam("thread_id"), runs.c.status.in_(INFLIGHT))
    .order_by(runs.c.seq)
)
_HAS_INFLIGHT = select(
    exists().where(runs.c.thread_id == bindparam("thread_id"), runs.c.status.in_(INFLIGHT))
)
# SQLite's claim of the run _NEXT_SQLITE_PICK found (Postgres claims in one statement).
_CLAIM_SQLITE = (
    update(runs)
    .where(runs.c.seq == bindparam("c_seq"), runs.c.status == "pending")
    .values(
        status="running",
        attempt=runs.c.attempt + 1,
        claims=runs.c.claims + 1,
        lease_owner=bindparam("c_owner"),
        lease_expires_at=bindparam("c_expires"),
        started_at=bindparam("c_now"),
        updated_at=bindparam("c_now"),
    )
    .returning(*runs.c)
)


def _row(mapping: Any) -> Row:
    row = dict(mapping)
    for key in ("created_at", "updated_at", "started_at", "ended_at", "lease_expires_at"):
        if key in row:
            row[key] = as_utc(row[key])
    return row


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes inside a caller's transaction ---------------------------------------------

    @staticmethod
    async def insert(conn: AsyncConnection, row: Row) -> Row:
        result = await conn.execute(_INSERT, row)
        return _row(result.mappings().one())

    @staticmethod
    async def insert_on_locked_thread(
        conn: AsyncConnection,
        queued: Row,
        claimed: Row | None,
        *,
        enqueue: bool,
        thread_metadata: dict[str, Any],
        assistant: hot.AssistantGuard | None = None,
    ) -> Row | None:
        """Postgres, in the transaction that holds the run's thread's lock: the in-flight
        check, the run (`claimed` if nothing of the thread is in flight, else `queued` if
        `enqueue`) and the thread's update, in one statement instead of three. None, and
        nothing written, if runs are in flight and the strategy is not `enqueue`. With
        `assistant`, AssistantChanged if the run's assistant has changed (the transaction is
        then aborted)."""
        sql, args = hot.insert_on_locked_thread(
            queued["thread_id"],
            queued,
            claimed,
            enqueue=enqueue,
            metadata=thread_metadata,
            updated_at=utcnow(),
            assistant=assistant,
        )
        driver = (await conn.get_raw_connection()).driver_connection
        with hot.changed_assistant_refused(assistant):
            record = await driver.fetchrow(sql, *args)
        if record is None:
            return None
        # Both runs were built with the same JSON columns, read back as the caller gave them.
        return {"kwargs": queued["kwargs"], "metadata": queued["metadata"], **record}

    @staticmethod
    async def inflight_for_thread(conn: AsyncConnection, thread_id: str) -> list[Row]:
        result = await conn.execute(_INFLIGHT_OF_THREAD, {"thread_id": thread_id})
        return [_row(m) for m in result.mappings()]

    @staticmethod
    async def cancel_inflight(
        conn: AsyncConnection, run_ids: Sequence[str], action: str
    ) -> tuple[list[Row], list[Row]]:
        """Stop the given runs, in one statement: pending ones end at once, running ones get a
        cancel request.

        Returns (ended pending runs, running runs now asked to stop).
        """
        now = utcnow()
        was_pending = runs.c.status == "pending"
        result = await conn.execute(
            update(runs)
            .where(runs.c.run_id.in_(run_ids), runs.c.status.in_(INFLIGHT))
            .values(
                status=case((was_pending, "interrupted"), else_=runs.c.status),
                ended_at=case((was_pending, now), else_=runs.c.ended_at),
                cancel_requested=action,
                updated_at=now,
            )
            .returning(*runs.c)
        )
        rows = [_row(m) for m in result.mappings()]
        # A running run keeps its status until its worker stops it.
        return [r for r in rows if r["status"] != "running"], [
            r for r in rows if r["status"] == "running"
        ]

    async def insert_with_thread(
        self, thread_row: Row, run_row: Row, assistant: hot.AssistantGuard | None = None
    ) -> Row:
        """A new thread and its first run in one statement (Postgres: a data-modifying CTE),
        committed as it runs: one round trip instead of four. With `assistant` (Postgres
        only), AssistantChanged and nothing written if the run's assistant has changed."""
        if self.db.is_postgres:
            sql, args = hot.insert_thread_and_run(thread_row, run_row, assistant)
            with hot.changed_assistant_refused(assistant):
                async with self.db.raw() as con:
                    record = await con.fetchrow(sql, *args)
            # The JSON columns are read back as the caller gave them.
            return {"kwargs": run_row["kwargs"], "metadata": run_row["metadata"], **record}
        assert assistant is None, "the assistant guard is a Postgres statement"
        if self.db.lite is not None:
            async with self.db.lite_write() as lite:
                return _row(lite.insert_thread_and_run(thread_row, run_row))
        async with self.db.begin() as conn:
            await conn.execute(_INSERT_THREAD, thread_row)
            return await self.insert(conn, run_row)

    async def insert_on_existing_thread(
        self,
        thread_id: str,
        run_row: Callable[..., Row],
        *,
        claim: bool,
        enqueue: bool,
        metadata: dict[str, Any],
        assistant: hot.AssistantGuard | None = None,
    ) -> Row | None:
        """A run on a thread that exists, with the thread's update, in one transaction
        (Postgres: the thread's lock, then insert_on_locked_thread's statement, on asyncpg;
        a SQLite file: SqliteHot.insert_on_thread); None, and nothing written, when the
        general path must decide (no such thread, or runs of it in flight and the strategy
        not `enqueue`). With `assistant` (Postgres), AssistantChanged if it has changed."""
        if self.db.is_postgres:
            async with self.db.raw() as con, con.transaction():
                thread = await con.fetchrow(hot.LOCK_THREAD, thread_id)
                if thread is None:
                    return None
                thread = dict(thread)
                queued = run_row(thread)
                sql, args = hot.insert_on_locked_thread(
                    thread_id,
                    queued,
                    run_row(thread, claimed=True) if claim else None,
                    enqueue=enqueue,
                    metadata={**(thread["metadata"] or {}), **metadata},
                    updated_at=utcnow(),
                    assistant=assistant,
                )
                with hot.changed_assistant_refused(assistant):
                    record = await con.fetchrow(sql, *args)
            if record is None:
                return None
            # Both runs were built with the same JSON columns, read back as the caller gave them.
            return {"kwargs": queued["kwargs"], "metadata": queued["metadata"], **record}
        assert self.db.lite is not None and assistant is None
        async with self.db.lite_write() as lite:
            run = lite.insert_on_thread(
                thread_id, run_row, claim=claim, enqueue=enqueue, metadata=metadata, now=utcnow()
            )
        return _row(run) if run is not None else None

    # -- the claim ------------------------------------------------------------------------

    async def next(self, owner: str, lease_secs: float) -> Row | None:
        """Claim the oldest eligible pending run: none of its thread running, none older pending."""
        try:
            if self.db.is_postgres:
                async with self.db.raw() as con:
                    record = await con.fetchrow(hot.CLAIM_NEXT, owner, float(lease_secs))
                return dict(record) if record is not None else None
            if self.db.lite is not None:
                async with self.db.lite_write() as lite:
                    found = lite.claim_next(owner, lease_secs, utcnow())
                return _row(found) if found else None
            async with self.db.begin() as conn:
                now = utcnow()
                seq = (await conn.execute(_NEXT_SQLITE_PICK, {"now": now})).scalar()
                if seq is None:
                    return None
                result = await conn.execute(
                    _CLAIM_SQLITE,
                    {
                        "c_seq": seq,
                        "c_owner": owner,
                        "c_expires": now + timedelta(seconds=lease_secs),
                        "c_now": now,
                    },
                )
                found = result.mappings().first()
                return _row(found) if found else None
        except (IntegrityError, asyncpg.UniqueViolationError):
            # The one-running-per-thread index refused a claim that raced another: not ours.
            return None

    # -- reads ----------------------------------------------------------------------------

    async def get(self, run_id: str, thread_id: str | None = None) -> Row | None:
        if self.db.is_postgres:
            async with self.db.raw() as con:
                if thread_id is None:
                    record = await con.fetchrow(hot.GET_RUN, run_id)
                else:
                    record = await con.fetchrow(hot.GET_RUN_ON_THREAD, run_id, thread_id)
            return dict(record) if record is not None else None
        if self.db.lite is not None:
            found = self.db.lite.get_run(run_id, thread_id)
            return _row(found) if found else None
        async with self.db.read() as conn:
            if thread_id is None:
                result = await conn.execute(_GET, {"run_id": run_id})
            else:
                result = await conn.execute(
                    _GET_ON_THREAD, {"run_id": run_id, "thread_id": thread_id}
                )
            found = result.mappings().first()
        return _row(found) if found else None

    async def next_on_thread(self, thread_id: str, after_seq: int) -> Row | None:
        """The thread's first run created after the run numbered `after_seq`."""
        query = (
            select(runs)
            .where(runs.c.thread_id == thread_id, runs.c.seq > after_seq)
            .order_by(runs.c.seq)
            .limit(1)
        )
        async with self.db.read() as conn:
            found = (await conn.execute(query)).mappings().first()
        return _row(found) if found else None

    async def thread_cursor(self, thread_id: str) -> int:
        """Where a new follower of a thread starts: before its oldest run in flight, or after
        its newest run when none is. One statement, so both are read from one snapshot: read
        one after the other, a run created in between would be neither in flight nor ahead."""
        inflight = func.min(runs.c.seq).filter(runs.c.status.in_(INFLIGHT)) - 1
        query = select(func.coalesce(inflight, func.max(runs.c.seq), 0)).where(
            runs.c.thread_id == thread_id
        )
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def list_for_thread(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Row]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.seq.desc()).limit(limit).offset(offset)
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    async def search(
        self,
        *,
        status: str | Sequence[str] | None,
        limit: int,
        offset: int,
        metadata: dict[str, Any] | None = None,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> list[Row]:
        query = select(runs).where(
            json_contains(runs.c.metadata, metadata, postgres=self.db.is_postgres)
        )
        if isinstance(status, str):
            query = query.where(runs.c.status == status)
        elif status:
            query = query.where(runs.c.status.in_(list(status)))
        if thread_id:
            query = query.where(runs.c.thread_id == thread_id)
        if run_ids is not None:
            query = query.where(runs.c.run_id.in_(list(run_ids)))
        query = query.order_by(runs.c.seq.desc()).limit(limit).offset(offset)
        async with self.db.read() as conn:
            return [_row(m) for m in (await conn.execute(query)).mappings()]

    @staticmethod
    async def requeue(conn: AsyncConnection, run_id: str) -> Row | None:
        """A finished run back to `pending` with fresh attempts (an operator's decision)."""
        result = await conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.status.in_(("error", "timeout")))
            .values(
                status="pending",
                attempt=0,
                retries=0,
                error=None,
                output=None,
                not_before=None,
                ended_at=None,
                cancel_requested=None,
                claims=0,
                updated_at=utcnow(),
            )
            .returning(*runs.c)
        )
        found = result.mappings().first()
        return _row(found) if found else None

    async def count_pending(self) -> int:
        async with self.db.read() as conn:
            query = select(func.count()).select_from(runs).where(runs.c.status == "pending")
            return int((await conn.execute(query)).scalar_one())

    async def thread_has_inflight(self, conn: AsyncConnection, thread_id: str) -> bool:
        return bool((await conn.execute(_HAS_INFLIGHT, {"thread_id": thread_id})).scalar())

    # -- the running run's lifecycle ---------------------------------------------------------

    async def heartbeat(self, run_ids: Iterable[str], owner: str, lease_secs: float) -> list[Row]:
        """Renew leases; returns (run_id, cancel_requested) of the runs still ours."""
        run_ids = list(run_ids)
        if not run_ids:
            return []
        async with self.db.single() as conn:
            result = await conn.execute(
                update(runs)
                .where(
                    runs.c.run_id.in_(run_ids),
                    runs.c.status == "running",
                    runs.c.lease_owner == owner,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_secs))
                .returning(runs.c.run_id, runs.c.cancel_requested)
            )
            return [dict(m) for m in result.mappings()]

    @staticmethod
    async def finish(
        conn: AsyncConnection,
        run_id: str,
        owner: str,
        *,
        status: str,
        error: Any = None,
        output: Any = None,
    ) -> Row | None:
        result = await conn.execute(
            _FINISH,
            {
                "b_run_id": run_id,
                "b_owner": owner,
                "b_status": status,
                "b_error": error,
                "b_output": output,
                "b_now": utcnow(),
            },
        )
        found = result.mappings().first()
        return _row(found) if found else None

    async def finish_settling_thread(
        self,
        run: Row,
        owner: str,
        *,
        status: str,
        error: Any,
        output: Any,
        thread_status: str,
        values: Any,
        interrupts: dict[str, Any],
        saves: str | None = None,
    ) -> tuple[Row | None, bool]:
        """Postgres: end the run and settle its thread in one statement (a SQLite file: in one
        transaction, without `saves`, whose checkpoints are in a file of their own). A
        temporary thread is deleted unless another of its runs is in flight; any other takes
        `thread_status` (or `busy` while another run is in flight), values, interrupts and
        error, and the same statement stores `saves` (a checkpoint batch document,
        PostgresSaver.document_of), whether or not the run is still ours, as a save of its own
        would. Returns the finished run (None if the run is no longer ours) and whether another
        run of the thread is in flight (True for a temporary thread that stays: its fields are
        the caller's to set)."""
        if self.db.lite is not None:
            if saves is not None:
                raise ValueError("the embedded store's checkpoints are saved apart")
            async with self.db.lite_write() as lite:
                found, busy = lite.finish(
                    run,
                    owner,
                    status=status,
                    error=error,
                    output=output,
                    thread_status=thread_status,
                    values=values,
                    interrupts=interrupts,
                    now=utcnow(),
                )
            return (_row(found) if found else None), busy
        run_id, thread_id = run["run_id"], run["thread_id"]
        common = (run_id, owner, thread_id, status, hot.json_param(error), hot.json_param(output))
        async with self.db.raw() as con:
            if run["kwargs"].get("temporary"):
                if saves is not None:
                    raise ValueError("a temporary thread's checkpoints are not saved")
                record = await con.fetchrow(hot.FINISH_TEMPORARY, *common)
                busy = record is not None and not record["thread_gone"]
            else:
                settle = (
                    thread_status,
                    hot.json_param(values),
                    hot.json_param(interrupts),
                    hot.json_param(error),
                )
                if saves is None:
                    record = await con.fetchrow(hot.FINISH_ON_THREAD, *common, *settle)
                else:
                    record = await con.fetchrow(
                        hot.FINISH_ON_THREAD_SAVING, *common, *settle, saves
                    )
                busy = record is not None and record["thread_busy"]
        if record is None:
            return None, True
        # The JSON columns are read back as the run has them and as they were just written.
        done = {"kwargs": run["kwargs"], "metadata": run["metadata"], **record}
        done.update(output=output, error=error)
        done.pop("thread_gone", None)
        done.pop("thread_busy", None)
        return done, busy

    @staticmethod
    async def delete(conn: AsyncConnection, run_id: str) -> Row | None:
        result = await conn.execute(delete(runs).where(runs.c.run_id == run_id).returning(*runs.c))
        found = result.mappings().first()
        return _row(found) if found else None

    async def retry_later(self, run_id: str, owner: str, delay_secs: float) -> bool:
        """The agent failed and its config asks for retries: pending again after a backoff."""
        now = utcnow()
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(runs)
                .where(
                    runs.c.run_id == run_id, runs.c.status == "running", runs.c.lease_owner == owner
                )
                .values(
                    status="pending",
                    retries=runs.c.retries + 1,
                    not_before=now + timedelta(seconds=delay_secs),
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            return bool(result.rowcount)

    async def release(self, run_ids: Sequence[str], owner: str) -> int:
        """Hand runs back to `pending` without charging an attempt (a clean shutdown)."""
        if not run_ids:
            return 0
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(runs)
                .where(
                    runs.c.run_id.in_(run_ids),
                    runs.c.status == "running",
                    runs.c.lease_owner == owner,
                )
                .values(
                    status="pending",
                    attempt=runs.c.attempt - 1,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=utcnow(),
                )
            )
            return result.rowcount or 0

    async def sweep_expired(self, max_attempts: int) -> tuple[list[Row], list[Row]]:
        """Runs whose worker vanished: back to `pending`, or `error` once out of attempts."""
        now = utcnow()
        expired = and_(runs.c.status == "running", runs.c.lease_expires_at < now)
        async with self.db.begin() as conn:
            dead = await conn.execute(
                update(runs)
                .where(expired, runs.c.attempt >= max_attempts)
                .values(
                    status="error",
                    error={
                        "error": "WorkerLost",
                        "message": f"worker lost {max_attempts} times",
                    },
                    updated_at=now,
                    ended_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(*runs.c)
            )
            dead_rows = [_row(m) for m in dead.mappings()]
            requeued = await conn.execute(
                update(runs)
                .where(expired, or_(runs.c.attempt < max_attempts))
                .values(status="pending", lease_owner=None, lease_expires_at=None, updated_at=now)
                .returning(*runs.c)
            )
            return [_row(m) for m in requeued.mappings()], dead_rows
