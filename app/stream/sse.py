"""SSE framing. Event data is JSON already (one line, from orjson), so frames are built as bytes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse

from app import serde
from app.broker.base import Event
from app.observability import metrics

log = logging.getLogger(__name__)

PING_SECS = 15


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (event.encode(), data)
    return b"event: %s\ndata: %s\nid: %s\n\n" % (event.encode(), data, event_id.encode())


def metadata_frame(run_id: str, attempt: int) -> bytes:
    return frame("metadata", serde.dumps({"run_id": run_id, "attempt": max(attempt, 1)}))


async def run_frames(
    run_id: str,
    attempt: int,
    batches: AsyncIterator[list[Event]],
    *,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body of one run: its metadata, then each batch of events in one write."""
    finished = False
    try:
        yield metadata_frame(run_id, attempt)
        async for batch in batches:
            yield b"".join(frame(e.event, e.data, str(e.seq) if e.seq > 0 else None) for e in batch)
        finished = True
    finally:
        if not finished and on_disconnect is not None:
            # The client went away mid-run and asked for the run to go with it.
            task = asyncio.get_running_loop().create_task(on_disconnect())
            task.add_done_callback(_log_failure)
        with contextlib.suppress(Exception):
            await batches.aclose()  # type: ignore[attr-defined]


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("cancel on disconnect failed: %s", task.exception())


class _CountedResponse(EventSourceResponse):
    """Counts the open stream once per connection, not per event."""

    async def _send_with_timeout(self, send: Any, message: Any) -> None:
        # Without a send timeout, the library still opens an anyio cancel scope around every
        # send: 6 µs each, most of what it adds to an event's write.
        if self.send_timeout is not None:
            return await super()._send_with_timeout(send, message)
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        metrics.STREAM_CLIENTS.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            metrics.STREAM_CLIENTS.dec()


def sse_response(
    frames: AsyncIterator[bytes], *, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    return _CountedResponse(frames, headers=headers, ping=PING_SECS, sep="\n")
