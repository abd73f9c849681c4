"""Follow a whole thread: each of its runs in turn, from the runs in flight when the client
arrives to every run created while it listens. Event ids are `<run number>-<event number>`, so
a client that reconnects with Last-Event-ID goes on from where it was, run by run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app import serde
from app.container import Container
from app.stream.relay import follow, mode_of
from app.stream.sse import frame

# How often a follower with nothing to relay asks Postgres for the thread's next run.
NEXT_RUN_POLL_SECS = 0.25
# The event number of a run's closing `run_done` marker: above any real event's.
DONE_SEQ = 2**62

THREAD_STREAM_MODES = frozenset({"run_modes", "lifecycle", "state_update"})


def parse_cursor(last_event_id: str | None) -> tuple[int, int] | None:
    if not last_event_id:
        return None
    run_part, _, event_part = last_event_id.partition("-")
    try:
        return int(run_part), int(event_part or 0)
    except ValueError:
        return None


async def start_of(c: Container, thread_id: str, last_event_id: str | None) -> tuple[int, int]:
    """(run number, event number) a follower goes on after. Taken before the response starts,
    so that a client holding the response headers knows every run created since will reach it.
    """
    cursor = parse_cursor(last_event_id)
    if cursor is None:
        return await c.runs.thread_cursor(thread_id), 0
    # Resume inside the run last seen, unless its end was seen already.
    after_run, after_event = cursor
    if after_event >= DONE_SEQ:
        return after_run, 0
    return after_run - 1, after_event


def _wanted(event_name: str, modes: set[str]) -> bool:
    if "run_modes" in modes:
        return True
    if "state_update" in modes and mode_of(event_name) in ("values", "updates", "error"):
        return True
    return False


async def thread_frames(
    c: Container, thread_id: str, modes: set[str], start: tuple[int, int]
) -> AsyncIterator[bytes]:
    after_run, after_event = start
    while True:
        run = await c.runs.next_on_thread(thread_id, after_run)
        if run is None:
            if await c.threads.get(thread_id) is None:
                return  # the thread was deleted: nothing more will come
            await asyncio.sleep(NEXT_RUN_POLL_SECS)
            continue
        number, run_id = run["seq"], run["run_id"]
        if after_event == 0:
            yield frame(
                "metadata",
                serde.dumps({"run_id": run_id, "attempt": max(run["attempt"], 1)}),
                f"{number}-0",
            )
        async for batch in follow(c, run_id, after_event):
            chunk = [
                frame(e.event, e.data, f"{number}-{e.seq}" if e.seq > 0 else None)
                for e in batch
                if _wanted(e.event, modes)
            ]
            if chunk:
                yield b"".join(chunk)
        yield frame(
            "metadata",
            serde.dumps({"status": "run_done", "run_id": run_id}),
            f"{number}-{DONE_SEQ}",
        )
        after_run, after_event = number, 0
