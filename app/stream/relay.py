"""Follow one run's events, from any process: subscribe, replay the log, relay live, close gaps.

Order matters: the subscription is confirmed before the log is read, so an event is either in
the replay or arrives live; sequence numbers drop the overlap and reveal gaps, which are filled
from the log. When nothing arrives for a while Postgres is asked whether the run is over, so a
stream ends even if Redis lost the end-of-run message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from app import serde
from app.broker.base import END, RESYNC, Broker, Event
from app.container import Container
from app.store.tables import TERMINAL_RUN_STATUSES

QUIET_CHECK_SECS = 2.0
QUIET_CHECK_MAX_SECS = 16.0


async def follow(
    c: Container, run_id: str, after_seq: int = 0, *, fresh: bool = False
) -> AsyncIterator[list[Event]]:
    """Every event of the run with seq > after_seq, exactly once, in order, until it ends;
    in batches of what is there at once, so that a burst goes out in one write.
    `fresh`: the run was created by this very request, so an empty log is no news."""
    broker = c.broker
    sub = await broker.subscribe(run_id)
    last = after_seq
    try:
        logged, ended = await _from_log(broker, run_id, last)
        if logged:
            last = logged[-1].seq
            yield logged
        if ended:
            return
        # Nothing logged: the run may have ended long ago, or Redis lost its log.
        check_now = not logged and not fresh
        quiet = QUIET_CHECK_SECS
        while True:
            event = None if check_now else await sub.get(quiet)
            check_now = False
            if event is None:
                row = await c.runs.get(run_id)
                if row is not None and row["status"] not in TERMINAL_RUN_STATUSES:
                    # While the broker works, its end message ends the stream and this
                    # check is only a safety net: a run that stays quiet (queued, thinking) is
                    # asked about less and less often, so a thousand waiting streams do not
                    # crowd the database. Without it, this check is how the end is seen.
                    if broker.healthy:
                        quiet = min(quiet * 2, QUIET_CHECK_MAX_SECS)
                    else:
                        quiet = QUIET_CHECK_SECS
                    continue
                # Over (or deleted): deliver whatever the log still holds, then stop.
                logged, ended = await _from_log(broker, run_id, last)
                if not ended and row is not None:
                    # The log lacks the end (Redis was down, flushed, or expired it):
                    # Postgres has the outcome.
                    logged.extend(final_events(row))
                if logged:
                    yield logged
                return
            quiet = QUIET_CHECK_SECS
            batch: list[Event] = []
            ended = False
            # This event and every other one already queued.
            while event is not None and not ended:
                if event.event == RESYNC or event.seq > last + 1:
                    logged, ended = await _from_log(broker, run_id, last)
                    if logged:
                        last = logged[-1].seq
                        batch.extend(logged)
                if not ended and last < event.seq and event.event != RESYNC:
                    if event.event == END:
                        ended = True
                    else:
                        last = event.seq
                        batch.append(event)
                event = sub.take()
            if batch:
                yield batch
            if ended:
                return
    finally:
        await broker.unsubscribe(sub)


async def _from_log(broker: Broker, run_id: str, after: int) -> tuple[list[Event], bool]:
    """Logged events after `after`, up to the end marker, and whether the marker was there."""
    out: list[Event] = []
    for event in await broker.replay(run_id, after):
        if event.event == END:
            return out, True
        out.append(event)
    return out, False


def final_events(row: dict) -> list[Event]:
    """What a stream can still say of a finished run from Postgres alone: its final values,
    or its error. No ids: they are not part of the run's numbered log."""
    if row["status"] == "error" and row.get("error"):
        return [Event(0, "error", serde.dumps(row["error"]))]
    if row.get("output") is not None:
        return [Event(0, "values", serde.dumps(row["output"]))]
    return []


def mode_of(event_name: str) -> str:
    """The stream mode an event belongs to: `updates|child:1` → updates, `messages/partial` →
    messages; the metadata and error events belong to every mode."""
    base = event_name.split("|", 1)[0]
    return base.split("/", 1)[0]


async def only_modes(
    batches: AsyncIterator[list[Event]], modes: set[str]
) -> AsyncIterator[list[Event]]:
    """Filter a joined stream to the stream modes a client asked for."""
    wanted = set(modes) | {"error", "metadata"}
    if "messages-tuple" in wanted:
        wanted.add("messages")
    async for batch in batches:
        if kept := [e for e in batch if mode_of(e.event) in wanted]:
            yield kept


async def is_finished_after(c: Container, run_id: str, after_seq: int) -> bool:
    """True when a reconnecting client has already seen everything of a finished run."""
    row = await c.runs.get(run_id)
    if row is None or row["status"] not in TERMINAL_RUN_STATUSES:
        return False
    remaining = await c.broker.replay(run_id, after_seq)
    return all(e.event == END for e in remaining)
