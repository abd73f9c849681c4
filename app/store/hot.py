"""The statements every run executes, in Postgres, on asyncpg directly.

SQLAlchemy's expression layer costs about a third of a millisecond of CPU per statement (build,
cache key, compile, result processing) for statements whose text never changes. These run as
plain SQL on the pooled connection's asyncpg driver, which prepares each once per connection.
The embedded store has its own (sqlite_hot.py); all answer the same rows as SQLAlchemy's.

JSON parameters go in as text (the pool's codecs, set up by SQLAlchemy's dialect, take text and
hand back Python objects); SQL NULL stands for None.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql

from app import serde
from app.store.pg_saver import saving_ctes
from app.store.tables import runs, threads

Row = dict[str, Any]


class AssistantChanged(Exception):
    """The remembered assistant a guarded insert was built from is no longer what its key
    resolves to: nothing was written; build the run again from a fresh read."""


@dataclass(frozen=True)
class AssistantGuard:
    """What a run was built from: the assistant `key` (an id or a graph id, with the graph's
    default assistant id `prefer`) resolved to, at this version and update time."""

    key: str
    prefer: str
    version: int
    updated_at: datetime


_INFLIGHT_OTHER = """
    SELECT 1 FROM runs o
    WHERE o.thread_id = $3 AND o.status IN ('pending', 'running') AND o.run_id <> $1
"""


def pick_eligible(now: str) -> str:
    """The oldest claimable pending run, highest priority first: its delay over, nothing of its
    thread running or older and pending. `now` is the SQL for the current time; SQLite's claim
    (runs.py) uses this too."""
    return f"""
    SELECT r.seq FROM runs r
    WHERE r.status = 'pending'
      AND (r.not_before IS NULL OR r.not_before <= {now})
      AND NOT EXISTS (
          SELECT 1 FROM runs o
          WHERE o.thread_id = r.thread_id
            AND (o.status = 'running' OR (o.status = 'pending' AND o.seq < r.seq))
      )
    ORDER BY r.priority DESC, r.seq
    LIMIT 1
    """


CLAIM_NEXT = f"""
WITH candidate AS ({pick_eligible("now()")} FOR UPDATE OF r SKIP LOCKED)
UPDATE runs SET
    status = 'running',
    attempt = runs.attempt + 1,
    claims = runs.claims + 1,
    lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $2),
    started_at = now(),
    updated_at = now()
FROM candidate
WHERE runs.seq = candidate.seq
RETURNING runs.*
"""

GET_RUN = "SELECT * FROM runs WHERE run_id = $1"
GET_THREAD = "SELECT * FROM threads WHERE thread_id = $1"
# A run on an existing thread starts by taking the thread's lock (runs of one thread are
# created one at a time), and reads what the run takes from it: not its values, which can be
# a long conversation's.
LOCK_THREAD = "SELECT thread_id, metadata FROM threads WHERE thread_id = $1 FOR UPDATE"
GET_RUN_ON_THREAD = "SELECT * FROM runs WHERE run_id = $1 AND thread_id = $2"


def _resolve_assistant(key: str, prefer: str) -> str:
    """By id, or by graph id: then the graph's default assistant (`prefer`), then the oldest."""
    return f"""
    SELECT * FROM assistants WHERE assistant_id = {key} OR graph_id = {key}
    ORDER BY assistant_id <> {key}, assistant_id <> {prefer}, created_at
    LIMIT 1
    """


GET_ASSISTANT = _resolve_assistant("$1", "$2")


def _run_columns_but(*held: str) -> str:
    """The runs columns a statement that wrote a run reads back: all but the JSON ones its
    caller holds already (`held`: the run's kwargs and metadata, which never change, and the
    outcome a finalize wrote). Those can be large (a run's input, a graph's final state), and
    were sent back and decoded for nothing."""
    return ", ".join(f'"{c.name}"' for c in runs.c if c.name not in held)


# Read back by an insert: all but what the caller inserted as JSON.
INSERTED_RUN_COLUMNS = _run_columns_but("kwargs", "metadata")
# Read back by a finalize: all but the JSON the run was created with and its outcome.
FINISHED_RUN_COLUMNS = _run_columns_but("kwargs", "metadata", "output", "error")

_FINISH = f"""
done AS (
    UPDATE runs SET status = $4, error = $5::jsonb, output = $6::jsonb, updated_at = now(),
        ended_at = now(), lease_owner = NULL, lease_expires_at = NULL
    WHERE run_id = $1 AND status = 'running' AND lease_owner = $2
    RETURNING {FINISHED_RUN_COLUMNS}
)"""

# The run ends and its temporary thread goes, unless another run of the thread is in flight
# (the statement sees the runs as they were before it: this one is still running).
FINISH_TEMPORARY = f"""
WITH {_FINISH},
gone AS (
    DELETE FROM threads
    WHERE thread_id = $3 AND EXISTS (SELECT 1 FROM done) AND NOT EXISTS ({_INFLIGHT_OTHER})
    RETURNING 1
)
SELECT done.*, EXISTS (SELECT 1 FROM gone) AS thread_gone FROM done
"""

# The run ends and its thread takes its outcome: $7 is the thread's status if no other run of
# it is in flight (else `busy`), $8..$10 its values, interrupts and error.
_SETTLE_THREAD = f"""
others AS (SELECT EXISTS ({_INFLIGHT_OTHER}) AS inflight),
settled AS (
    UPDATE threads SET
        status = CASE WHEN others.inflight THEN 'busy' ELSE $7 END,
        values = $8::jsonb, interrupts = $9::jsonb, error = $10::jsonb, updated_at = now(),
        state_updated_at = now()
    FROM others
    WHERE thread_id = $3 AND EXISTS (SELECT 1 FROM done)
    RETURNING 1
)
SELECT done.*, others.inflight AS thread_busy FROM done, others
"""

FINISH_ON_THREAD = f"WITH {_FINISH},{_SETTLE_THREAD}"

# The same, storing the run's last checkpoint saves (a batch document, $11) with it: one
# round trip and one commit where the saves would take another of each.
FINISH_ON_THREAD_SAVING = f"WITH {saving_ctes('$11')},{_FINISH},{_SETTLE_THREAD}"


def json_param(value: Any) -> str | None:
    return None if value is None else serde.dumps_str(value)


@functools.cache
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, JSON))


@functools.cache
def _insert_sql(table: Table, columns: tuple[str, ...], returning: bool) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({values})"
    return sql + " RETURNING *" if returning else sql


def _params(table: Table, row: Row) -> tuple[tuple[str, ...], list[Any]]:
    json_columns = _json_columns(table)
    columns = tuple(row)
    return columns, [json_param(row[c]) if c in json_columns else row[c] for c in columns]


def _guarded(value: str, first: int) -> str:
    """The assistant the run was built from, remembered from an earlier run (`value`), if
    the key still resolves to it unchanged (same version and updated_at; the guard's four
    values are parameters `first` on); else NULL, which the column refuses: nothing is
    written, and the caller raises AssistantChanged."""
    return (
        f"(SELECT g.assistant_id FROM ({_resolve_assistant(f'${first}', f'${first + 1}')}) g"
        f" WHERE g.assistant_id = {value} AND g.version = ${first + 2}"
        f" AND g.updated_at = ${first + 3})"
    )


def _guard_args(assistant: AssistantGuard) -> list[Any]:
    return [assistant.key, assistant.prefer, assistant.version, assistant.updated_at]


def _guard_assistant(columns: tuple[str, ...], values: list[str], first: int | None) -> None:
    """Put the guard (its values from parameter `first` on) in place of the run's
    assistant_id value; nothing if there is no guard."""
    if first is not None:
        at = columns.index("assistant_id")
        values[at] = _guarded(values[at], first)


@contextlib.contextmanager
def changed_assistant_refused(assistant: AssistantGuard | None) -> Iterator[None]:
    """Around a guarded statement: its refusal (the NULL the guard put in the NOT NULL
    assistant_id column) raised as AssistantChanged; any other error as it is."""
    try:
        yield
    except asyncpg.NotNullViolationError as error:
        if assistant is not None and error.column_name == "assistant_id":
            raise AssistantChanged from error
        raise


@functools.cache
def _insert_pair_sql(
    thread_columns: tuple[str, ...], run_columns: tuple[str, ...], guarded: bool
) -> str:
    thread_sql = _insert_sql(threads, thread_columns, False)
    shift = len(thread_columns)
    names = ", ".join(f'"{c}"' for c in run_columns)
    values = [f"${i + shift}" for i in range(1, len(run_columns) + 1)]
    _guard_assistant(run_columns, values, shift + len(run_columns) + 1 if guarded else None)
    return (
        f"WITH new_thread AS ({thread_sql}) "
        f"INSERT INTO runs ({names}) VALUES ({', '.join(values)})"
        f" RETURNING {INSERTED_RUN_COLUMNS}"
    )


def insert_thread(row: Row) -> tuple[str, list[Any]]:
    """A thread on its own (a conversation's start), read back whole: its SQL and arguments."""
    columns, args = _params(threads, row)
    return _insert_sql(threads, columns, True), args


def insert_thread_and_run(
    thread_row: Row, run_row: Row, assistant: AssistantGuard | None = None
) -> tuple[str, list[Any]]:
    """A new thread and its first run, one statement (a data-modifying CTE): its SQL and
    arguments. With `assistant`, the statement also checks that the assistant is unchanged."""
    thread_columns, thread_args = _params(threads, thread_row)
    run_columns, run_args = _params(runs, run_row)
    sql = _insert_pair_sql(thread_columns, run_columns, assistant is not None)
    args = thread_args + run_args
    if assistant is not None:
        args += _guard_args(assistant)
    return sql, args


@functools.cache
def _cast(table: Table, column: str) -> str:
    """The column's Postgres type, for a parameter whose type no VALUES list gives."""
    return table.c[column].type.compile(dialect=postgresql.dialect())


def _selected(columns: tuple[str, ...], first: int, guard: int | None) -> tuple[str, str]:
    names = ", ".join(f'"{c}"' for c in columns)
    values = [f"${first + i}::{_cast(runs, c)}" for i, c in enumerate(columns)]
    _guard_assistant(columns, values, guard)
    return names, ", ".join(values)


@functools.cache
def _locked_thread_sql(
    queued: tuple[str, ...], claimed: tuple[str, ...] | None, guarded: bool
) -> str:
    # $1 thread id, $2 whether to queue behind runs in flight, $3 and $4 the thread's new
    # metadata and update time; then the queued run's values, the claimed run's, the guard's.
    guard = 5 + len(queued) + len(claimed or ()) if guarded else None
    names, values = _selected(queued, 5, guard)
    queue_when = "busy.inflight AND $2::boolean" if claimed else "NOT busy.inflight OR $2::boolean"
    parts = [
        """busy AS (
            SELECT EXISTS (
                SELECT 1 FROM runs WHERE thread_id = $1 AND status IN ('pending', 'running')
            ) AS inflight
        )""",
        f"queued AS (INSERT INTO runs ({names}) SELECT {values} FROM busy"
        f" WHERE {queue_when} RETURNING {INSERTED_RUN_COLUMNS})",
    ]
    inserted = "SELECT * FROM queued"
    if claimed:
        names, values = _selected(claimed, 5 + len(queued), guard)
        parts.append(
            f"claimed AS (INSERT INTO runs ({names}) SELECT {values} FROM busy"
            f" WHERE NOT busy.inflight RETURNING {INSERTED_RUN_COLUMNS})"
        )
        inserted += " UNION ALL SELECT * FROM claimed"
    parts += [
        f"new_run AS ({inserted})",
        """touched AS (
            UPDATE threads SET status = 'busy', metadata = $3::jsonb, updated_at = $4
            WHERE thread_id = $1 AND EXISTS (SELECT 1 FROM new_run)
        )""",
    ]
    return "WITH " + ",\n".join(parts) + "\nSELECT * FROM new_run"


def insert_on_locked_thread(
    thread_id: str,
    queued: Row,
    claimed: Row | None,
    *,
    enqueue: bool,
    metadata: dict[str, Any],
    updated_at: datetime,
    assistant: AssistantGuard | None = None,
) -> tuple[str, list[Any]]:
    """A run on an existing thread whose lock the transaction holds, with the thread's update:
    one statement after the lock (which has to come first: in READ COMMITTED a statement
    reads with the snapshot it started with, and would not see a run committed by the lock's
    holder while it waited). Inserts `claimed` if nothing of the thread is in flight, else
    `queued` if `enqueue` (else nothing: the caller applies the multitask strategy); with no
    `claimed`, `queued` in either case. With `assistant`, only if the assistant is unchanged.
    Its SQL and arguments."""
    queued_columns, queued_args = _params(runs, queued)
    args = [thread_id, enqueue, json_param(metadata), updated_at, *queued_args]
    claimed_columns = None
    if claimed is not None:
        claimed_columns, claimed_args = _params(runs, claimed)
        args += claimed_args
    if assistant is not None:
        args += _guard_args(assistant)
    sql = _locked_thread_sql(queued_columns, claimed_columns, assistant is not None)
    return sql, args
