"""Crons: runs on a schedule, on a thread or each on a thread of its own (stateless).

A cron's `next_run_date` is its next slot. The scheduler (worker/scheduler.py) claims due
crons through the database, creates each one's run with the ordinary run service, and moves
`next_run_date` to the first slot after now, so a server that was down over several slots
fires once when it is back, not once per slot. The run is created under the idempotency key
`cron:<cron_id>:<slot>`: should a process die after creating the run but before moving the
cron on, the process that claims the cron next gets the same run back instead of a second.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy.exc import IntegrityError

from app.container import Container
from app.observability import metrics
from app.services import assistants as assistant_service
from app.services import runs as run_service
from app.services.errors import Invalid, NotFound, ServiceError
from app.store.crons import Claim, Filters
from app.store.db import utcnow

Row = dict[str, Any]

log = logging.getLogger(__name__)

# Fields of a cron's `payload`: what each of its runs is created with.
RUN_FIELDS = (
    "input",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "multitask_strategy",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
    "checkpoint_during",
)
PUBLIC_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "payload",
    "user_id",
    "next_run_date",
    "metadata",
    "enabled",
)
ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
SCHEDULE_HELP = (
    "use the standard 5-field cron format: minute hour day-of-month month day-of-week, "
    "e.g. '*/5 * * * *' for every five minutes"
)


# -- schedule math --------------------------------------------------------------------------


def check_schedule(schedule: str, timezone: str | None = None) -> None:
    """Raise Invalid unless `schedule` is a 5-field cron expression that fires at some point."""
    schedule = schedule.strip()
    if schedule.lower() not in ALIASES and len(schedule.split()) != 5:
        raise Invalid(f"Invalid cron schedule {schedule!r}: {SCHEDULE_HELP}")
    try:
        valid = croniter.is_valid(schedule)
    except Exception:
        valid = False
    if not valid:
        raise Invalid(f"Invalid cron schedule {schedule!r}: {SCHEDULE_HELP}")
    zone(timezone)
    try:
        next_slot(schedule, timezone, utcnow())
    except Exception:
        # Valid fields that never line up, such as 30 February.
        raise Invalid(f"Cron schedule {schedule!r} never fires") from None


def zone(timezone: str | None) -> ZoneInfo:
    if not timezone:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"Invalid timezone {timezone!r}: use an IANA name such as 'America/New_York'"
        ) from None


def next_slot(schedule: str, timezone: str | None, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC. The schedule reads in `timezone`."""
    start = after.astimezone(zone(timezone))
    return croniter(schedule.strip(), start).get_next(datetime).astimezone(UTC)


def upcoming(row: Row, after: datetime) -> datetime | None:
    """The slot a cron fires next, or None when it falls after the cron's end_time."""
    slot = next_slot(row["schedule"], row["timezone"], after)
    end = row["end_time"]
    return None if end is not None and slot > end else slot


def to_utc(value: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the API's side -------------------------------------------------------------------------


def public(row: Row, select: list[str] | None = None) -> Row:
    out = {
        "cron_id": row["cron_id"],
        "assistant_id": row["assistant_id"],
        "thread_id": row["thread_id"],
        "on_run_completed": row["on_run_completed"],
        "end_time": row["end_time"],
        "schedule": row["schedule"],
        "timezone": row["timezone"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "payload": row["payload"] or {},
        "user_id": row["user_id"],
        "next_run_date": row["next_run_date"],
        "metadata": row["metadata"] or {},
        "enabled": row["enabled"],
    }
    if not select:
        return out
    picked = {k: out[k] for k in select if k in out}
    if "now" in select:
        picked["now"] = utcnow()
    return picked


async def create(
    c: Container,
    *,
    thread_id: str | None,
    assistant_id: str,
    schedule: str,
    timezone: str | None,
    end_time: datetime | None,
    enabled: bool,
    metadata: dict[str, Any] | None,
    on_run_completed: str | None,
    run_fields: dict[str, Any],
) -> Row:
    """A new cron. Stateless when `thread_id` is None; its first firing is its next slot."""
    check_schedule(schedule, timezone)
    assistant = await assistant_service.get(c, assistant_id)
    if assistant["graph_id"] not in c.registry:
        raise NotFound(
            f"Graph '{assistant['graph_id']}' of assistant '{assistant_id}' is not loaded"
        )
    if thread_id is not None and await c.threads.get(thread_id) is None:
        raise NotFound(f"Thread with ID {thread_id} not found")
    now = utcnow()
    row: Row = {
        "cron_id": str(uuid.uuid4()),
        "assistant_id": assistant["assistant_id"],
        "thread_id": thread_id,
        "user_id": None,
        "schedule": schedule.strip(),
        "timezone": timezone,
        "payload": {
            "assistant_id": assistant["assistant_id"],
            **{k: v for k, v in run_fields.items() if k in RUN_FIELDS and v is not None},
        },
        "metadata": metadata or {},
        "on_run_completed": (on_run_completed or "delete") if thread_id is None else None,
        "enabled": enabled,
        "end_time": to_utc(end_time),
        "created_at": now,
        "updated_at": now,
    }
    row["next_run_date"] = upcoming(row, now)
    return await c.crons.insert(row)


async def get(c: Container, cron_id: str) -> Row:
    row = await c.crons.get(cron_id)
    if row is None:
        raise NotFound(f"Cron {cron_id} not found")
    return row


async def update(c: Container, cron_id: str, changes: dict[str, Any]) -> Row:
    """Apply a PATCH body (only the fields it sent). Metadata merges, run fields replace;
    a new schedule, timezone or end_time, or turning the cron back on, reschedules it from
    now (a cron switched off for a while does not fire its missed slot when switched on)."""
    async with c.crons.exclusive(), c.db.begin() as conn:
        row = await c.crons.get_for_update(conn, cron_id, lock=c.db.is_postgres)
        if row is None:
            raise NotFound(f"Cron {cron_id} not found")
        if changes.get("on_run_completed") is not None and row["thread_id"] is not None:
            raise Invalid(
                "on_run_completed applies to stateless crons only; this cron runs on thread "
                f"{row['thread_id']}"
            )
        values: dict[str, Any] = {}
        for key in ("schedule", "timezone", "on_run_completed", "enabled"):
            if changes.get(key) is not None and changes[key] != row[key]:
                values[key] = changes[key].strip() if key == "schedule" else changes[key]
        if "end_time" in changes and to_utc(changes["end_time"]) != row["end_time"]:
            values["end_time"] = to_utc(changes["end_time"])
        if changes.get("metadata"):
            values["metadata"] = {**(row["metadata"] or {}), **changes["metadata"]}
        fields = {k: v for k, v in changes.items() if k in RUN_FIELDS and v is not None}
        if fields:
            values["payload"] = {**(row["payload"] or {}), **fields}
        if values.keys() & {"schedule", "timezone", "end_time"} or values.get("enabled") is True:
            merged = {**row, **values}
            check_schedule(merged["schedule"], merged["timezone"])  # a 422 rolls back
            values["next_run_date"] = upcoming(merged, utcnow())
        updated = await c.crons.set_fields(conn, cron_id, **values)
    assert updated is not None
    return updated


async def delete(c: Container, cron_id: str) -> None:
    async with c.crons.exclusive():
        if not await c.crons.delete(cron_id):
            raise NotFound(f"Cron {cron_id} not found")


async def resolve_assistant(c: Container, assistant_id: str | None) -> str | None:
    """Filters take an assistant id or a graph id, as run creation does."""
    if assistant_id is None:
        return None
    found = await c.assistants.get(assistant_id)
    return found["assistant_id"] if found else assistant_id


async def search(
    c: Container,
    filters: Filters,
    *,
    limit: int,
    offset: int,
    sort_by: str,
    sort_order: str,
) -> list[Row]:
    filters.assistant_id = await resolve_assistant(c, filters.assistant_id)
    return await c.crons.search(
        filters, limit=limit, offset=offset, sort_by=sort_by, sort_order=sort_order
    )


async def count(c: Container, filters: Filters) -> int:
    filters.assistant_id = await resolve_assistant(c, filters.assistant_id)
    return await c.crons.count(filters)


# -- the scheduler's side -------------------------------------------------------------------


def run_request(row: Row) -> run_service.RunRequest:
    """The run a firing creates: the cron's payload, its metadata and its id."""
    p = row["payload"] or {}
    modes = p.get("stream_mode") or ["values"]
    durability = p.get("durability")
    if durability is None and p.get("checkpoint_during") is not None:
        # The deprecated flag, as the durability it stands for.
        durability = "async" if p["checkpoint_during"] else "exit"
    config = dict(p.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": row["cron_id"]}
    return run_service.RunRequest(
        assistant_id=row["assistant_id"],
        input=p.get("input"),
        metadata={**(row["metadata"] or {}), "cron_id": row["cron_id"]},
        config=config,
        context=p.get("context"),
        stream_mode=[modes] if isinstance(modes, str) else list(modes),
        stream_subgraphs=bool(p.get("stream_subgraphs")),
        stream_resumable=bool(p.get("stream_resumable")),
        interrupt_before=p.get("interrupt_before"),
        interrupt_after=p.get("interrupt_after"),
        multitask_strategy=p.get("multitask_strategy") or "enqueue",
        on_completion=row["on_run_completed"] or "delete",
        webhook=p.get("webhook"),
        durability=durability,
    )


def idempotency_key(row: Row) -> str:
    return f"cron:{row['cron_id']}:{row['next_run_date'].isoformat()}"


async def fire_due(c: Container, limit: int) -> int:
    """Fire the crons that are due, up to `limit` of them. Returns how many were dealt with
    (fired, skipped or removed); those left due (the queue is full, the database failed)
    are tried again on the next check."""
    done = 0
    async with c.crons.claim_due(limit) as claim:
        for row in claim.rows:
            try:
                if await _fire(c, claim, row):
                    done += 1
            except Exception as exc:
                log.warning("cron %s not fired, will retry: %s", row["cron_id"], exc)
    return done


async def _fire(c: Container, claim: Claim, row: Row) -> bool:
    cron_id, now = row["cron_id"], utcnow()
    if row["end_time"] is not None and now > row["end_time"]:
        await claim.advance(cron_id, None)
        return True
    thread_id = row["thread_id"]
    try:
        run = await run_service.create(
            c,
            thread_id,
            run_request(row),
            stateless=thread_id is None,
            idempotency_key=idempotency_key(row),
        )
    except run_service.Overloaded:
        return False
    except IntegrityError:
        # The slot's idempotency key names a run that has since been deleted: it did fire.
        log.info("cron %s: its %s slot fired before", cron_id, row["next_run_date"])
    except NotFound as exc:
        if thread_id is not None and await c.threads.get(thread_id) is None:
            log.warning("cron %s removed: its thread %s is gone", cron_id, thread_id)
            await claim.drop(cron_id)
            return True
        log.warning("cron %s skipped its %s slot: %s", cron_id, row["next_run_date"], exc.detail)
    except ServiceError as exc:
        # The thread is busy and the strategy is `reject`, or the payload no longer fits.
        log.info("cron %s skipped its %s slot: %s", cron_id, row["next_run_date"], exc.detail)
    else:
        metrics.CRONS_FIRED.inc()
        log.info("cron %s fired run %s", cron_id, run["run_id"])
    # From the later of now and the slot: a clock a little behind the database's must not
    # give back the slot that just fired.
    await claim.advance(cron_id, upcoming(row, max(now, row["next_run_date"])))
    return True
