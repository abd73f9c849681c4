"""The run lifecycle as the API sees it: create (multitask strategies), cancel, join, delete."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.agents.executor import normalize_stream_modes
from app.agents.registry import default_assistant_id
from app.broker import Broker
from app.broker.base import END, SEQ_PER_ATTEMPT, cancel_message
from app.broker.wakeups import Handoff
from app.container import Container
from app.observability import metrics
from app.services import assistants as assistant_service
from app.services.errors import Conflict, NotFound, ServiceError
from app.store import idempotency
from app.store.db import Database, as_utc, utcnow
from app.store.hot import AssistantChanged, AssistantGuard
from app.store.runs import Runs
from app.store.tables import TERMINAL_RUN_STATUSES
from app.store.threads import Threads

Row = dict[str, Any]

REJECT_DETAIL = (
    "Thread is already running a task. Wait for it to finish or choose a different "
    "multitask strategy."
)
# How often a waiter re-reads Postgres when no end-of-run message arrives (Redis down).
JOIN_POLL_SECS = 1.0
FALLBACK_FIRST_POLL_SECS = 0.02


def public(row: Row) -> Row:
    return {
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "status": row["status"],
        "metadata": row["metadata"] or {},
        "kwargs": row["kwargs"] or {},
        "multitask_strategy": row["multitask_strategy"],
    }


def operator_view(row: Row) -> Row:
    """A run with what an operator needs besides: attempts, timings, error, priority."""
    return {
        **public(row),
        "attempt": row["attempt"],
        "error": row["error"],
        "priority": row.get("priority", 0),
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
    }


@dataclass
class RunRequest:
    """A validated run-creation body (see api/models.py)."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    stream_mode: list[str] = field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    on_completion: str = "delete"
    on_disconnect: str = "continue"
    webhook: str | None = None
    durability: str | None = None
    feedback_keys: list[str] | None = None
    after_seconds: float | None = None
    priority: int = 0


def _merge_config(assistant: Row, req: RunRequest, ids: dict[str, str]) -> dict[str, Any]:
    base = assistant["config"] or {}
    run = req.config or {}
    config: dict[str, Any] = {**base, **{k: v for k, v in run.items() if k != "configurable"}}
    configurable = {**(base.get("configurable") or {}), **(run.get("configurable") or {}), **ids}
    checkpoint = req.checkpoint or {}
    checkpoint_id = req.checkpoint_id or checkpoint.get("checkpoint_id")
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    if checkpoint.get("checkpoint_ns"):
        configurable["checkpoint_ns"] = checkpoint["checkpoint_ns"]
    config["configurable"] = configurable
    config["metadata"] = {**(base.get("metadata") or {}), **(run.get("metadata") or {})}
    return config


class Overloaded(ServiceError):
    """Too many pending runs: the client should come back later."""

    status_code = 503
    retry_after = 5


async def create(
    c: Container,
    thread_id: str | None,
    req: RunRequest,
    *,
    stateless: bool = False,
    idempotency_key: str | None = None,
) -> Row:
    if idempotency_key:
        async with c.db.read() as conn:
            known = await idempotency.run_for_key(conn, idempotency_key)
        if known is not None and (existing := await c.runs.get(known)) is not None:
            return existing
    await _check_capacity(c)
    try:
        try:
            return await _create(c, thread_id, req, stateless, idempotency_key)
        except AssistantChanged:
            c.assistants.forget(req.assistant_id)
            return await _create(c, thread_id, req, stateless, idempotency_key, remembered=False)
    except IntegrityError:
        if not idempotency_key:
            raise
        # Another request with the same key won the race: answer with its run.
        async with c.db.read() as conn:
            known = await idempotency.run_for_key(conn, idempotency_key)
        existing = await c.runs.get(known) if known else None
        if existing is None:
            raise
        return existing


async def _check_capacity(c: Container) -> None:
    cap = c.settings.MAX_PENDING_RUNS
    if not cap:
        return
    count = await c.pending.count()
    if count >= cap:
        raise Overloaded(
            f"{count} runs are pending (MAX_PENDING_RUNS={cap}); "
            f"retry in {Overloaded.retry_after} s"
        )


async def _create(
    c: Container,
    thread_id: str | None,
    req: RunRequest,
    stateless: bool,
    idempotency_key: str | None,
    *,
    remembered: bool = True,
) -> Row:
    # The inserts below that check the assistant themselves (Postgres: a new thread without
    # an idempotency key, or a thread that exists) let the run be built from the assistant
    # this process resolved last time instead of reading it first; if it has changed,
    # nothing is written (AssistantChanged) and the run is built again from a fresh read.
    # Any other path the run takes refuses a remembered assistant the same way.
    checked = c.db.is_postgres and (thread_id is not None or not idempotency_key)
    assistant = c.assistants.remembered(req.assistant_id) if checked and remembered else None
    guard = None
    if assistant is not None:
        guard = AssistantGuard(
            req.assistant_id,
            default_assistant_id(req.assistant_id),
            assistant["version"],
            assistant["updated_at"],
        )
    else:
        assistant = await assistant_service.for_run(c, req.assistant_id)
        if checked:
            c.assistants.remember(req.assistant_id, assistant)
    graph_id = assistant["graph_id"]
    if graph_id not in c.registry:
        raise NotFound(f"Graph '{graph_id}' of assistant '{req.assistant_id}' is not loaded")
    run_id = str(uuid.uuid4())
    # A thread id made here names no thread yet: nothing to look up or lock.
    fresh = thread_id is None
    thread_id = thread_id or str(uuid.uuid4())
    ids = {
        "run_id": run_id,
        "thread_id": thread_id,
        "graph_id": graph_id,
        "assistant_id": assistant["assistant_id"],
    }
    kwargs: dict[str, Any] = {
        "input": req.input,
        "command": req.command,
        "config": _merge_config(assistant, req, ids),
        "context": {**(assistant["context"] or {}), **(req.context or {})} or None,
        "stream_mode": normalize_stream_modes(req.stream_mode),
        "subgraphs": req.stream_subgraphs,
        "interrupt_before": req.interrupt_before,
        "interrupt_after": req.interrupt_after,
        "webhook": req.webhook,
        "feedback_keys": req.feedback_keys,
        "temporary": stateless and req.on_completion == "delete",
        # The server made the thread for this run: it has no checkpoint to read at the start.
        "new_thread": fresh,
        "resumable": req.stream_resumable,
        "durability": req.durability,
    }
    now = utcnow()
    cancelled: list[Row] = []
    ended_pending = 0
    # An idle worker of this process takes the run straight from here: it goes in claimed,
    # and needs neither a sentinel nor a claim. Only if it can start now, which the
    # transaction below decides for a thread that exists.
    handoff = None if req.after_seconds else c.broker.wakeups.reserve()

    def run_row(thread: Row, *, claimed: bool = False) -> Row:
        # The thread's metadata reaches the run's checkpoints, as LangGraph records it.
        kwargs["config"]["metadata"] = {
            **(thread["metadata"] or {}),
            **kwargs["config"]["metadata"],
        }
        row = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant["assistant_id"],
            "created_at": now,
            "updated_at": now,
            "status": "pending",
            # As LangGraph's server records it: the assistant's metadata, the thread's, which
            # graph and assistant, and the request's own, which wins.
            "metadata": {
                **(assistant["metadata"] or {}),
                **(thread["metadata"] or {}),
                "graph_id": graph_id,
                "assistant_id": assistant["assistant_id"],
                **(req.metadata or {}),
            },
            "kwargs": kwargs,
            "multitask_strategy": req.multitask_strategy,
            "priority": req.priority,
            "not_before": now + timedelta(seconds=req.after_seconds) if req.after_seconds else None,
        }
        if claimed:
            lease = timedelta(seconds=c.settings.BG_JOB_LEASE_SECS)
            row.update(
                status="running",
                attempt=1,
                claims=1,
                lease_owner=c.owner_id,
                lease_expires_at=now + lease,
                started_at=now,
            )
        return row

    def new_thread() -> Row:
        row = Threads.new_row(
            thread_id,
            {"graph_id": graph_id, "assistant_id": assistant["assistant_id"]},
            temporary=stateless and req.on_completion == "delete",
        )
        row["status"] = "busy"  # as set below for a thread that existed
        return row

    try:
        if fresh and not idempotency_key:
            # Nothing to look up or lock: the thread and the run go in with one statement.
            thread = new_thread()
            run = await c.runs.insert_with_thread(
                thread, run_row(thread, claimed=handoff is not None), guard
            )
        else:
            run, cancelled, ended_pending = await _insert_in_transaction(
                c,
                thread_id,
                graph_id,
                assistant["assistant_id"],
                req,
                stateless,
                fresh,
                idempotency_key,
                new_thread,
                run_row,
                claim=handoff is not None,
                guard=guard,
            )
    except BaseException:
        if handoff is not None:
            handoff.give(None)  # the worker goes back to waiting
        raise
    metrics.RUNS_CREATED.inc()
    metrics.RUNS_FINISHED.labels("interrupted").inc(ended_pending)
    for r in cancelled:
        await c.broker.send_control(cancel_message(r["run_id"], req.multitask_strategy))
    if run["status"] == "running" and handoff is not None:
        await _hand_over(c, handoff, run)
    else:
        if handoff is not None:
            handoff.give(None)
        await c.broker.wake()
    if req.after_seconds:
        wake_later(c, req.after_seconds)
    return run


async def _hand_over(c: Container, handoff: Handoff, run: Row) -> None:
    """Start a run inserted claimed by this process on the worker it was promised to. Known
    as local from here on, so a wait or stream of this request never asks Redis about it."""
    run_id = run["run_id"]
    c.outcomes.track(run_id)
    c.broker.claim_local(run_id, 0)
    if handoff.give(run):
        metrics.RUNS_HANDED_OVER.inc()
        return
    # Its worker stopped meanwhile (a drain): the run goes back to the queue.
    c.outcomes.settle(run_id, None)
    c.broker.release_local(run_id, ended=False)
    await c.runs.release([run_id], c.owner_id)
    await c.broker.wake()


async def _insert_in_transaction(
    c: Container,
    thread_id: str,
    graph_id: str,
    assistant_id: str,
    req: RunRequest,
    stateless: bool,
    fresh: bool,
    idempotency_key: str | None,
    new_thread: Callable[[], Row],
    run_row: Callable[..., Row],
    *,
    claim: bool,
    guard: AssistantGuard | None,
) -> tuple[Row, list[Row], int]:
    """The run, with its thread's lock, multitask strategy and idempotency key, in one
    transaction. Returns it, the running runs it asked to stop, and how many pending runs it
    ended. `claim`: insert it claimed by this process if nothing of its thread is in flight."""
    cancelled: list[Row] = []
    ended_pending = 0
    if c.db.on_driver and not fresh and not idempotency_key:
        # The common case (the thread exists, nothing of it in flight or the run queues
        # behind it) in one transaction on the driver itself; the rest as below.
        run = await c.runs.insert_on_existing_thread(
            thread_id,
            run_row,
            claim=claim,
            enqueue=req.multitask_strategy == "enqueue",
            metadata={"graph_id": graph_id, "assistant_id": assistant_id},
            assistant=guard,
        )
        if run is not None:
            return run, cancelled, ended_pending
    async with c.db.begin() as conn:
        thread = (
            None if fresh else await Threads.get_for_update(conn, thread_id, lock=c.db.is_postgres)
        )
        thread_metadata = (
            None
            if thread is None
            else {
                **(thread["metadata"] or {}),
                "graph_id": graph_id,
                "assistant_id": assistant_id,
            }
        )
        if thread is None:
            if guard is not None:  # the statements below do not check it
                raise AssistantChanged
            if not stateless and req.if_not_exists != "create":
                raise NotFound(f"Thread with ID {thread_id} not found")
            thread = await Threads.insert(conn, new_thread())
            fresh = True
        elif c.db.is_postgres and (
            run := await Runs.insert_on_locked_thread(
                conn,
                run_row(thread),
                run_row(thread, claimed=True) if claim else None,
                enqueue=req.multitask_strategy == "enqueue",
                thread_metadata=thread_metadata,
                assistant=guard,
            )
        ):
            # Nothing in flight, or queued behind it: no strategy to apply, thread updated.
            if idempotency_key:
                await idempotency.remember(
                    conn, idempotency_key, run["run_id"], c.settings.IDEMPOTENCY_KEY_TTL_SECS
                )
            return run, cancelled, ended_pending
        else:
            if guard is not None:  # the statements below do not check it
                raise AssistantChanged
            inflight = await Runs.inflight_for_thread(conn, thread_id)
            claim = claim and not inflight
            if inflight:
                if req.multitask_strategy == "reject":
                    raise Conflict(REJECT_DETAIL)
                if req.multitask_strategy in ("interrupt", "rollback"):
                    ids_to_stop = [r["run_id"] for r in inflight]
                    ended, asked = await Runs.cancel_inflight(
                        conn, ids_to_stop, req.multitask_strategy
                    )
                    ended_pending = len(ended)
                    if req.multitask_strategy == "rollback":
                        for r in ended:
                            await Runs.delete(conn, r["run_id"])
                    cancelled = asked
        run = await Runs.insert(conn, run_row(thread, claimed=claim))
        if not fresh:
            await Threads.mark_busy(conn, thread_id, thread_metadata)
        if idempotency_key:
            await idempotency.remember(
                conn, idempotency_key, run["run_id"], c.settings.IDEMPOTENCY_KEY_TTL_SECS
            )
    return run, cancelled, ended_pending


_delayed_wakes: set[asyncio.TimerHandle] = set()


def wake_later(c: Container, delay: float) -> None:
    """Wake a worker when a delayed run becomes due, instead of waiting for the next poll.
    Best effort: if this process goes away, the workers' polling still finds the run."""
    loop = asyncio.get_running_loop()

    def fire() -> None:
        _delayed_wakes.discard(handle)
        task = loop.create_task(c.broker.wake())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    handle = loop.call_later(delay + 0.01, fire)
    _delayed_wakes.add(handle)


async def get(c: Container, thread_id: str | None, run_id: str) -> Row:
    row = await c.runs.get(run_id, thread_id)
    if row is None:
        raise NotFound(f"Run {run_id} not found")
    return row


async def list_for_thread(
    c: Container, thread_id: str, *, limit: int, offset: int, status: str | None
) -> list[Row]:
    if await c.threads.get(thread_id) is None:
        raise NotFound(f"Thread with ID {thread_id} not found")
    return await c.runs.list_for_thread(thread_id, limit=limit, offset=offset, status=status)


async def wait_terminal(
    c: Container, run_id: str, timeout: float | None = None, *, seen_running: bool = False
) -> Row | None:
    """Block until the run is terminal (or gone: None). A run executing in this process is
    settled by its worker; any other is woken by the run's end event, and Postgres is re-read
    every JOIN_POLL_SECS so it also returns with Redis down.
    `seen_running`: the caller created the run or read its row a moment ago, and it was not
    over: its end is then looked for in the replay log, not in Postgres, before waiting."""
    async with asyncio.timeout(timeout):
        here = c.outcomes.local(run_id)
        if here is not None:
            row = await asyncio.shield(here)
            if row is not None:
                return row
            seen_running = False  # it went on elsewhere
        return await _wait_elsewhere(c, run_id, seen_running)


async def _wait_elsewhere(c: Container, run_id: str, seen_running: bool) -> Row | None:
    sub = await c.broker.subscribe(run_id)
    try:
        # A run seen running a moment ago is not over unless its end is logged already (the
        # end is logged before it is published, and this subscription now hears it); the
        # log's last entry is cheaper to ask than the row, and than the whole log.
        read_row = not seen_running or await _end_logged(c, run_id)
        # With Redis down the end of a run on another process is only seen in Postgres:
        # look soon, then less often, so short runs are not held up a whole poll.
        pause = FALLBACK_FIRST_POLL_SECS
        while True:
            if read_row:
                row = await c.runs.get(run_id)
                if row is None or row["status"] in TERMINAL_RUN_STATUSES:
                    return row
            read_row = True
            while True:
                if c.broker.healthy:
                    event = await sub.get(JOIN_POLL_SECS)
                else:
                    event = await sub.get(pause)
                    pause = min(pause * 2, JOIN_POLL_SECS)
                if event is None or event.event == END:
                    break
    finally:
        await c.broker.unsubscribe(sub)


async def _end_logged(c: Container, run_id: str) -> bool:
    last = await c.broker.last_logged(run_id)
    return last is not None and last.event == END


async def join(c: Container, thread_id: str | None, run_id: str) -> Row:
    row = await get(c, thread_id, run_id)
    if row["status"] in TERMINAL_RUN_STATUSES:
        return row
    row = await wait_terminal(c, run_id, seen_running=True)
    if row is None:
        raise NotFound(f"Run {run_id} not found")
    return row


def wait_output(row: Row) -> Any:
    """The body `runs/wait` and `join` answer: the final state values, or the error."""
    if row["status"] == "error" and row.get("error"):
        return {"__error__": row["error"]}
    return row.get("output") if row.get("output") is not None else {}


async def cancel(
    c: Container, thread_id: str | None, run_id: str, *, wait: bool, action: str
) -> Row | None:
    """Stop the run; with `wait`, return its row once it ended (otherwise None)."""
    if action != "interrupt":
        # A rollback deletes the run as it stops: told before the read, the read could find
        # it gone and answer 404 for the cancel that removed it.
        row = await get(c, thread_id, run_id)
        await stop_run(c.db, c.broker, row, action)
        return await wait_terminal(c, run_id) if wait else None
    # Told before it is read: a worker executing it stops it meanwhile, and only if it is the
    # run of this thread (the read checks the rest: a run that ended or another thread's is
    # answered 404 and, not executing anywhere, was not touched). The checked message below
    # still goes out, for a worker that claims it at this moment.
    asked_at = utcnow()
    told = asyncio.ensure_future(
        c.broker.send_control(
            {**cancel_message(run_id, action), "thread_id": thread_id, "unchecked": True}
        )
    )
    try:
        row = await get(c, thread_id, run_id)
    finally:
        await told
    if not _interrupted_since(row, asked_at):
        await stop_run(c.db, c.broker, row, action)
    # Otherwise the message stopped it before the read: done, as asked.
    if wait:
        return await wait_terminal(c, run_id)
    return None


def _interrupted_since(row: Row, asked_at: datetime) -> bool:
    """Whether the run was interrupted after `asked_at`: by this request's message, not by an
    earlier cancel (which makes this one a 404). `ended_at` is the database's clock (Postgres'
    now(), or this process's in SQLite): the same clock on one host; across hosts, a skew
    larger than the moment between the message and the run's end reads as an earlier end."""
    ended_at = as_utc(row.get("ended_at"))
    return row["status"] == "interrupted" and ended_at is not None and ended_at >= asked_at


async def stop_run(db: Database, broker: Broker, row: Row, action: str) -> str:
    """Cancel a pending or running run. A pending one ends at once; a running one gets the
    request in Postgres (its worker's heartbeat reads it) and on the broker's control channel
    (its worker stops it at once). Needs only the database and the broker, so
    `runyard runs cancel` works without a server. Returns "ended", "asked" or "gone"."""
    run_id = row["run_id"]
    if row["status"] in TERMINAL_RUN_STATUSES:
        raise NotFound(
            "No matching runs to cancel. Please verify the thread ID and run IDs are correct, "
            "and the runs haven't been deleted or completed."
        )
    message = cancel_message(run_id, action)
    sent = None
    if row["status"] == "running":
        # Its worker hears the message while Postgres records the request (for a worker that
        # misses the message), and the request is one statement: the run stops sooner.
        sent = asyncio.ensure_future(broker.send_control(message))
        async with db.single() as conn:
            ended, asked = await Runs.cancel_inflight(conn, [run_id], action)
        if ended:  # handed back to the queue meanwhile (a drain), and ended now
            async with db.begin() as conn:
                await _settle_threads_of_ended(db, conn, ended, action)
    else:
        async with db.begin() as conn:
            ended, asked = await Runs.cancel_inflight(conn, [run_id], action)
            await _settle_threads_of_ended(db, conn, ended, action)
    # A pending run ends here; a running one ends when its worker stops it (and counts it).
    metrics.RUNS_FINISHED.labels("interrupted").inc(len(ended))
    if sent is not None:
        await sent
    elif asked:
        await broker.send_control(message)
    if ended:
        await broker.publish_end(
            run_id, ended[0]["claims"] * SEQ_PER_ATTEMPT + 1, ended[0]["status"]
        )
    return "ended" if ended else "asked" if asked else "gone"


async def _settle_threads_of_ended(
    db: Database, conn: AsyncConnection, ended: list[Row], action: str
) -> None:
    """Pending runs a cancel ended: gone for a rollback; their thread idle (or interrupted)
    unless another of its runs is in flight."""
    for r in ended:
        if action == "rollback":
            await Runs.delete(conn, r["run_id"])
        if not await Runs(db).thread_has_inflight(conn, r["thread_id"]):
            thread = await Threads.get_for_update(conn, r["thread_id"], lock=False)
            status = "interrupted" if thread and thread["interrupts"] else "idle"
            await Threads.set_fields(conn, r["thread_id"], status=status)


async def search(
    c: Container,
    *,
    status: str | None,
    limit: int,
    offset: int,
    metadata: dict[str, Any] | None = None,
    thread_id: str | None = None,
) -> list[Row]:
    return await c.runs.search(
        status=status, limit=limit, offset=offset, metadata=metadata, thread_id=thread_id
    )


BULK_CANCEL_LIMIT = 10_000


async def cancel_many(
    c: Container,
    *,
    thread_id: str | None,
    run_ids: list[str] | None,
    status: str | None,
    action: str,
) -> int:
    """Cancel the runs named, or every in-flight run of a thread, or every run with a status;
    runs that already ended are skipped. Returns how many were cancelled."""
    if run_ids:
        rows = await c.runs.search(
            status=None, limit=BULK_CANCEL_LIMIT, offset=0, run_ids=run_ids, thread_id=thread_id
        )
        if not rows:
            raise NotFound(f"No runs found with IDs {', '.join(run_ids[:10])}")
    else:
        wanted = ("pending", "running") if status in (None, "all") else (status,)
        rows = await c.runs.search(
            status=wanted, limit=BULK_CANCEL_LIMIT, offset=0, thread_id=thread_id
        )
    cancelled = 0
    for row in rows:
        if row["status"] in TERMINAL_RUN_STATUSES:
            continue
        try:
            await cancel(c, row["thread_id"], row["run_id"], wait=False, action=action)
            cancelled += 1
        except NotFound:
            continue  # it ended meanwhile
    return cancelled


async def requeue(c: Container, run_id: str) -> Row:
    return await requeue_run(c.db, c.broker, run_id)


async def requeue_run(db: Database, broker: Broker, run_id: str) -> Row:
    """Give a dead run (ended `error` or `timeout`) another go. Needs only the database and
    the broker, so `runyard runs requeue` can call it without a server."""
    row = await Runs(db).get(run_id)
    if row is None:
        raise NotFound(f"Run {run_id} not found")
    async with db.begin() as conn:
        requeued = await Runs.requeue(conn, run_id)
        if requeued is None:
            raise Conflict(
                f"Run {run_id} is {row['status']}: only runs that ended error or timeout "
                "can be requeued"
            )
        if await Threads.get_for_update(conn, row["thread_id"], lock=False) is None:
            # Its temporary thread is gone: bring it back so the run has one.
            await Threads.insert(conn, Threads.new_row(row["thread_id"], temporary=True))
        await Threads.set_fields(conn, row["thread_id"], status="busy")
    await broker.drop_log(run_id)
    await broker.wake()
    return requeued


async def delete(c: Container, thread_id: str, run_id: str) -> None:
    """Delete a run; a pending or running one is cancelled first, so its thread settles."""
    row = await get(c, thread_id, run_id)
    if row["status"] not in TERMINAL_RUN_STATUSES:
        await cancel(c, thread_id, run_id, wait=True, action="interrupt")
    async with c.db.begin() as conn:
        await Runs.delete(conn, run_id)
    await c.broker.drop_log(run_id)
