"""The statements every run executes, in the embedded store, on a sqlite3 connection of their own.

Through SQLAlchemy's async engine a statement costs the embedded server about 150 µs of CPU (a
pooled connection checked out and back, a greenlet hop, the compiled form looked up, the
result's rows mapped), where SQLite itself answers in about 10: a stateless run's eight
statements were a quarter of its server CPU. These run as plain SQL on one connection that the
process keeps for them, as store/hot.py does for Postgres on asyncpg.

Values go in and come out through the tables' own SQLAlchemy types (their bind and result
processors for the engine's dialect, JSON through the engine's serializer), so a row written
here reads back through SQLAlchemy as it would had SQLAlchemy written it, and the other way
round. Each write is one transaction, begun and committed without giving the event loop back
in between (sqlite3 never suspends), under the process's write lock (Database.begin): no
other writer of this process can be inside a transaction meanwhile. Reads need no lock: the
database is in WAL mode.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table

from app.store.db import set_sqlite_pragmas
from app.store.hot import INSERTED_RUN_COLUMNS, pick_eligible
from app.store.tables import assistants, runs, threads

Row = dict[str, Any]
Processor = Callable[[Any], Any] | None

_INFLIGHT = "SELECT 1 FROM runs WHERE thread_id = :thread_id AND status IN ('pending', 'running')"
_DELETE_IF_IDLE = f"DELETE FROM threads WHERE thread_id = :thread_id AND NOT EXISTS ({_INFLIGHT})"


class _Codec:
    """A table's columns as SQLite stores them: each value bound and read by its column's type."""

    def __init__(self, table: Table, dialect: Any) -> None:
        self.names = tuple(c.name for c in table.c)
        self.columns = ", ".join(f'"{n}"' for n in self.names)
        impls = {c.name: c.type.dialect_impl(dialect) for c in table.c}
        self.binds: dict[str, Processor] = {
            name: impl.bind_processor(dialect) for name, impl in impls.items()
        }
        self.results: tuple[Processor, ...] = tuple(
            impls[name].result_processor(dialect, None) for name in self.names
        )
        self._some: dict[tuple[str, ...], tuple[Processor, ...]] = {}  # by `names` decoded

    def bind(self, name: str, value: Any) -> Any:
        process = self.binds[name]
        return value if process is None else process(value)

    def decode(self, record: tuple[Any, ...], names: tuple[str, ...] | None = None) -> Row:
        """A record of this table's columns (`names`, all of them by default), as Python values."""
        results = self.results if names is None else self._results_of(names)
        return {
            name: value if process is None else process(value)
            for name, process, value in zip(names or self.names, results, record, strict=True)
        }

    def _results_of(self, names: tuple[str, ...]) -> tuple[Processor, ...]:
        results = self._some.get(names)
        if results is None:
            results = self._some[names] = tuple(self.results[self.names.index(n)] for n in names)
        return results


class SqliteHot:
    def __init__(self, path: str, dialect: Any) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None
        self._runs = _Codec(runs, dialect)
        self._threads = _Codec(threads, dialect)
        self._assistants = _Codec(assistants, dialect)
        self._inserted = tuple(n.strip('"') for n in INSERTED_RUN_COLUMNS.split(", "))
        self._insert_sql: dict[tuple[str, tuple[str, ...], str], str] = {}
        self._pick = pick_eligible(":now")
        self._claim = (
            "UPDATE runs SET status = 'running', attempt = attempt + 1, claims = claims + 1,"
            " lease_owner = :owner, lease_expires_at = :expires, started_at = :now,"
            f" updated_at = :now WHERE seq = :seq AND status = 'pending'"
            f" RETURNING {self._runs.columns}"
        )
        self._finish = (
            "UPDATE runs SET status = :status, error = :error, output = :output,"
            " updated_at = :now, ended_at = :now, lease_owner = NULL, lease_expires_at = NULL"
            " WHERE run_id = :run_id AND status = 'running' AND lease_owner = :owner"
            f" RETURNING {self._runs.columns}"
        )
        self._get_run = f"SELECT {self._runs.columns} FROM runs WHERE run_id = :run_id"
        self._get_run_on_thread = self._get_run + " AND thread_id = :thread_id"
        self._get_thread = (
            f"SELECT {self._threads.columns} FROM threads WHERE thread_id = :thread_id"
        )
        # What a run takes from its thread: not its values, which can be a long conversation's.
        self._thread_of_run = ("thread_id", "metadata")
        self._thread_for_run = (
            "SELECT thread_id, metadata FROM threads WHERE thread_id = :thread_id"
        )

        # By id, or by graph id: then the graph's default assistant, then the oldest (as hot.py).
        self._get_assistant = (
            f"SELECT {self._assistants.columns} FROM assistants"
            " WHERE assistant_id = :key OR graph_id = :key"
            " ORDER BY assistant_id <> :key, assistant_id <> :prefer, created_at LIMIT 1"
        )

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            # Autocommit: each transaction is begun and ended here, explicitly.
            con = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            set_sqlite_pragmas(con, None)
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the caller holds the process's write lock."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            if con.in_transaction:  # SQLite ends some failed transactions itself
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _stamp(self, value: datetime) -> Any:
        return self._runs.bind("created_at", value)

    def _insert(
        self, con: sqlite3.Connection, codec: _Codec, table: str, row: Row, ret: str
    ) -> sqlite3.Cursor:
        names = tuple(row)
        sql = self._insert_sql.get((table, names, ret))
        if sql is None:
            columns = ", ".join(f'"{n}"' for n in names)
            marks = ", ".join("?" * len(names))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            if ret:
                sql += f" RETURNING {ret}"
            self._insert_sql[(table, names, ret)] = sql
        return con.execute(sql, [codec.bind(n, row[n]) for n in names])

    # -- writes: the caller holds the write lock --------------------------------------------

    def insert_thread(self, row: Row) -> Row | None:
        """A thread on its own, as stored; None if its id is taken."""
        try:
            with self._transaction() as con:
                record = self._insert(con, self._threads, "threads", row, self._threads.columns)
                stored = record.fetchone()
        except sqlite3.IntegrityError:
            return None
        return self._threads.decode(stored)

    def insert_thread_and_run(self, thread_row: Row, run_row: Row) -> Row:
        """A new thread and its first run; the run as stored (its JSON columns the caller's)."""
        with self._transaction() as con:
            self._insert(con, self._threads, "threads", thread_row, "")
            cursor = self._insert(con, self._runs, "runs", run_row, INSERTED_RUN_COLUMNS)
            record = cursor.fetchone()
        run = self._runs.decode(record, self._inserted)
        return {"kwargs": run_row["kwargs"], "metadata": run_row["metadata"], **run}

    def insert_on_thread(
        self,
        thread_id: str,
        run_row: Callable[..., Row],
        *,
        claim: bool,
        enqueue: bool,
        metadata: dict[str, Any],
        now: datetime,
    ) -> Row | None:
        """A run on a thread that exists, and the thread's update (busy, its metadata merged
        with `metadata`): `run_row(thread, claimed=...)` claimed if `claim` and nothing of the
        thread is in flight, else queued if `enqueue`. None, and nothing written, if the
        thread does not exist or runs of it are in flight and the strategy is not `enqueue`:
        the caller's general path then applies `if_not_exists` or the strategy."""
        with self._transaction() as con:
            record = con.execute(self._thread_for_run, {"thread_id": thread_id}).fetchone()
            if record is None:
                return None
            thread = self._threads.decode(record, self._thread_of_run)
            inflight = con.execute(_INFLIGHT, {"thread_id": thread_id}).fetchone() is not None
            if inflight and not enqueue:
                return None
            row = run_row(thread, claimed=claim and not inflight)
            cursor = self._insert(con, self._runs, "runs", row, INSERTED_RUN_COLUMNS)
            run = self._runs.decode(cursor.fetchone(), self._inserted)
            con.execute(
                "UPDATE threads SET status = 'busy', metadata = ?, updated_at = ?"
                " WHERE thread_id = ?",
                (
                    self._threads.bind("metadata", {**(thread["metadata"] or {}), **metadata}),
                    self._stamp(now),
                    thread_id,
                ),
            )
        return {"kwargs": row["kwargs"], "metadata": row["metadata"], **run}

    def claim_next(self, owner: str, lease_secs: float, now: datetime) -> Row | None:
        """The oldest eligible pending run, claimed; None if there is none (or the
        one-running-per-thread index refused it)."""
        try:
            with self._transaction() as con:
                found = con.execute(self._pick, {"now": self._stamp(now)}).fetchone()
                if found is None:
                    return None
                record = con.execute(
                    self._claim,
                    {
                        "seq": found[0],
                        "owner": owner,
                        "expires": self._stamp(now + timedelta(seconds=lease_secs)),
                        "now": self._stamp(now),
                    },
                ).fetchone()
        except sqlite3.IntegrityError:
            return None
        return None if record is None else self._runs.decode(record)

    def finish(
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
        now: datetime,
    ) -> tuple[Row | None, bool]:
        """Runs.finish_settling_thread's transaction: the run ends; its temporary thread goes
        unless another run of it is in flight, or its kept thread takes `thread_status` (`busy`
        while another is in flight), values, interrupts and error. Returns the finished run
        (None if it is no longer this owner's) and whether another run is in flight."""
        bind = self._runs.bind
        thread_id = run["thread_id"]
        with self._transaction() as con:
            record = con.execute(
                self._finish,
                {
                    "status": status,
                    "error": bind("error", error),
                    "output": bind("output", output),
                    "now": self._stamp(now),
                    "run_id": run["run_id"],
                    "owner": owner,
                },
            ).fetchone()
            if record is None:
                return None, True
            if run["kwargs"].get("temporary"):
                gone = con.execute(_DELETE_IF_IDLE, {"thread_id": thread_id}).rowcount
                busy = not gone
            else:
                busy = con.execute(_INFLIGHT, {"thread_id": thread_id}).fetchone() is not None
                thread = self._threads.bind
                con.execute(
                    'UPDATE threads SET status = ?, "values" = ?, interrupts = ?, error = ?,'
                    " updated_at = ?, state_updated_at = ? WHERE thread_id = ?",
                    (
                        "busy" if busy else thread_status,
                        thread("values", values),
                        thread("interrupts", interrupts),
                        thread("error", error),
                        self._stamp(now),
                        self._stamp(now),
                        thread_id,
                    ),
                )
        return self._runs.decode(record), busy

    # -- reads ------------------------------------------------------------------------------

    def get_run(self, run_id: str, thread_id: str | None = None) -> Row | None:
        if thread_id is None:
            record = self.con.execute(self._get_run, {"run_id": run_id}).fetchone()
        else:
            record = self.con.execute(
                self._get_run_on_thread, {"run_id": run_id, "thread_id": thread_id}
            ).fetchone()
        return None if record is None else self._runs.decode(record)

    def get_thread(self, thread_id: str) -> Row | None:
        record = self.con.execute(self._get_thread, {"thread_id": thread_id}).fetchone()
        return None if record is None else self._threads.decode(record)

    def get_assistant(self, key: str, prefer: str) -> Row | None:
        record = self.con.execute(self._get_assistant, {"key": key, "prefer": prefer}).fetchone()
        return None if record is None else self._assistants.decode(record)
