"""`runyard runs ...` and `runyard threads ...`: straight against the database and the broker,
so they work with no server running (and on a server that is stuck)."""

from __future__ import annotations

import asyncio
import logging
import time
from argparse import ArgumentParser, Namespace
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app import serde
from app.cli.common import (
    describe_error,
    fail,
    load_settings,
    make_broker,
    open_database,
    positive_int,
    table,
)
from app.store.db import as_utc, utcnow
from app.store.runs import Runs
from app.store.tables import RUN_STATUSES, TERMINAL_RUN_STATUSES, THREAD_STATUSES
from app.store.threads import Threads

if TYPE_CHECKING:
    from app.broker import Broker
    from app.settings import Settings
    from app.store.db import Database

Row = dict[str, Any]
Command = Callable[["Settings", "Database", "Broker", Namespace], Awaitable[None]]

RUN_COLUMNS = ["run_id", "thread_id", "status", "attempt", "created_at", "error"]
THREAD_COLUMNS = ["thread_id", "status", "created_at", "updated_at", "metadata"]
CANCEL_POLL_SECS = 0.25


def _run(command: Command, args: Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.services.errors import ServiceError

    # The broker logs what it could not deliver (Redis down); show that, briefly.
    logging.basicConfig(level=logging.WARNING, format="runyard: %(message)s")
    settings = load_settings()

    async def run() -> None:
        async with open_database(settings) as db:
            broker = make_broker(settings)
            try:
                await command(settings, db, broker, args)
            except ServiceError as exc:
                fail(str(exc.detail))
            except SQLAlchemyError as exc:
                fail(
                    f"database error: {describe_error(exc)}\n"
                    "a missing table or column means the schema is behind: run `runyard migrate`"
                )
            finally:
                await broker.close()

    asyncio.run(run())
    return 0


def _print_json(value: Any) -> None:
    print(serde.dumps_str(value))


# -- runs ---------------------------------------------------------------------------------


async def runs_list(settings: Settings, db: Database, broker: Broker, args: Namespace) -> None:
    rows = await Runs(db).search(
        status=args.status, thread_id=args.thread, limit=args.limit, offset=0
    )
    if args.json:
        _print_json([_run_view(r) for r in rows])
        return
    for r in rows:
        r["error"] = (r["error"] or {}).get("message", "")
    print(table(rows, RUN_COLUMNS) if rows else "no runs")


def _run_view(row: Row) -> Row:
    keep = (
        "run_id thread_id assistant_id status multitask_strategy priority attempt retries "
        "created_at updated_at started_at ended_at not_before lease_owner lease_expires_at "
        "cancel_requested metadata error"
    ).split()
    return {k: row.get(k) for k in keep}


async def _why_pending(db: Database, row: Row) -> str:
    """What a pending run waits for, in the order the claim checks it."""
    not_before = as_utc(row["not_before"])
    if not_before is not None and not_before > utcnow():
        return f"not before {not_before:%Y-%m-%d %H:%M:%S} UTC (after_seconds, or a retry)"
    async with db.read() as conn:
        ahead = [
            r
            for r in await Runs.inflight_for_thread(conn, row["thread_id"])
            if r["seq"] < row["seq"] or r["status"] == "running"
        ]
    if ahead:
        first = ahead[0]
        return f"behind run {first['run_id']} ({first['status']}) on the same thread"
    return (
        "nothing ahead of it: waiting for a free worker (is a process with "
        "N_JOBS_PER_WORKER > 0 running on this database?)"
    )


async def runs_get(settings: Settings, db: Database, broker: Broker, args: Namespace) -> None:
    row = await Runs(db).get(args.run_id)
    if row is None:
        fail(f"run {args.run_id} not found")
    view = _run_view(row)
    if args.json:
        _print_json(view)
        return
    if row["status"] == "pending":
        view["waiting_for"] = await _why_pending(db, row)
    width = max(len(k) for k in view)
    for key, value in view.items():
        if value is None or value == {}:
            continue
        if key in ("metadata", "error"):
            value = serde.dumps_str(value)
        elif hasattr(value, "strftime"):
            value = value.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{key.ljust(width)}  {value}")


async def runs_cancel(settings: Settings, db: Database, broker: Broker, args: Namespace) -> None:
    from app.services.runs import stop_run

    runs = Runs(db)
    row = await runs.get(args.run_id)
    if row is None:
        fail(f"run {args.run_id} not found")
    if row["status"] in TERMINAL_RUN_STATUSES:
        fail(f"run {args.run_id} already ended ({row['status']}): nothing to cancel")
    outcome = await stop_run(db, broker, row, args.action)
    if outcome == "ended":
        gone = " and deleted (rollback)" if args.action == "rollback" else ""
        print(f"run {args.run_id} was pending: interrupted{gone}")
        return
    if outcome == "gone":
        now = await runs.get(args.run_id)
        print(f"run {args.run_id} ended meanwhile ({now['status'] if now else 'deleted'})")
        return
    print(f"run {args.run_id} is running on {row['lease_owner']}: cancel ({args.action}) requested")
    if broker.shared and await broker.ping():
        print("  sent to its process through Redis: it stops within a second")
    else:
        print(
            "  its process reads the request from the database at its next heartbeat "
            f"(every BG_JOB_HEARTBEAT_SECS={settings.BG_JOB_HEARTBEAT_SECS:g} s)"
        )
    if args.wait:
        await _wait_ended(runs, args.run_id, args.timeout)


async def _wait_ended(runs: Runs, run_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = "running"
    while time.monotonic() < deadline:
        now = await runs.get(run_id)
        if now is None:
            print(f"run {run_id} stopped and was deleted (rollback)")
            return
        status = now["status"]
        if status in TERMINAL_RUN_STATUSES:
            print(f"run {run_id} stopped: {status}")
            return
        await asyncio.sleep(CANCEL_POLL_SECS)
    fail(f"run {run_id} still {status} after {timeout:g} s")


async def runs_requeue(settings: Settings, db: Database, broker: Broker, args: Namespace) -> None:
    from app.services.runs import requeue_run

    row = await requeue_run(db, broker, args.run_id)
    print(f"run {row['run_id']} is pending again")


# -- threads ------------------------------------------------------------------------------


async def threads_list(settings: Settings, db: Database, broker: Broker, args: Namespace) -> None:
    rows = await Threads(db).search(
        metadata=None,
        values=None,
        status=args.status,
        ids=None,
        limit=args.limit,
        offset=0,
        sort_by="created_at",
        sort_order="desc",
    )
    if args.json:
        _print_json([{k: r[k] for k in THREAD_COLUMNS} for r in rows])
        return
    print(table(rows, THREAD_COLUMNS) if rows else "no threads")


# -- parsers ------------------------------------------------------------------------------


def _command(parser: ArgumentParser, command: Command) -> None:
    parser.set_defaults(func=lambda args: _run(command, args))


def add_parsers(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list, inspect, cancel and requeue runs (no server needed)")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)

    listing = runs_sub.add_parser("list", help="runs across threads, newest first")
    listing.add_argument("--status", choices=RUN_STATUSES, help="e.g. error for dead runs")
    listing.add_argument("--thread", default=None, metavar="THREAD_ID")
    listing.add_argument("--limit", type=positive_int, default=20)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    _command(listing, runs_list)

    get = runs_sub.add_parser("get", help="one run in detail; for a pending one, what it waits for")
    get.add_argument("run_id")
    get.add_argument("--json", action="store_true", help="JSON instead of lines")
    _command(get, runs_get)

    cancel = runs_sub.add_parser("cancel", help="stop a pending or running run")
    cancel.add_argument("run_id")
    cancel.add_argument(
        "--action",
        choices=("interrupt", "rollback"),
        default="interrupt",
        help="interrupt keeps the run and its checkpoints; rollback deletes both",
    )
    cancel.add_argument("--wait", action="store_true", help="wait until the run has stopped")
    cancel.add_argument("--timeout", type=float, default=30.0, help="seconds --wait waits")
    _command(cancel, runs_cancel)

    requeue = runs_sub.add_parser("requeue", help="a run that ended error/timeout, back to pending")
    requeue.add_argument("run_id")
    _command(requeue, runs_requeue)

    threads = sub.add_parser("threads", help="list threads (no server needed)")
    threads_sub = threads.add_subparsers(dest="threads_command", required=True)
    tlist = threads_sub.add_parser("list", help="threads, newest first")
    tlist.add_argument("--status", choices=THREAD_STATUSES)
    tlist.add_argument("--limit", type=positive_int, default=20)
    tlist.add_argument("--json", action="store_true", help="JSON instead of a table")
    _command(tlist, threads_list)
