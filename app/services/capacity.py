"""The pending-run count that MAX_PENDING_RUNS is held against, asked sparingly and off the
request's path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# One COUNT per process per half second is plenty to hold a bound.
PENDING_COUNT_SECS = 0.5


class PendingCount:
    """At most one COUNT in flight per process, and at most one per PENDING_COUNT_SECS.
    Once there is an answer, a request takes it as it is and, if it has aged, only starts
    the next COUNT: the bound is approximate anyway (other processes create runs meanwhile),
    and a COUNT on the way to a run's first event costs more than its half second of age.
    Only the first request, with no answer yet, waits for one."""

    def __init__(self, ask: Callable[[], Awaitable[int]]) -> None:
        self._ask = ask
        self._value: int | None = None
        self._at = float("-inf")
        self._asking: asyncio.Future[int] | None = None

    async def count(self) -> int:
        if time.monotonic() - self._at > PENDING_COUNT_SECS and self._asking is None:
            self._asking = asyncio.ensure_future(self._ask())
            self._asking.add_done_callback(self._answered)
        if self._value is not None:
            return self._value
        assert self._asking is not None
        return await asyncio.shield(self._asking)

    def _answered(self, asking: asyncio.Future[int]) -> None:
        self._asking = None
        if not asking.cancelled() and asking.exception() is None:
            self._value, self._at = asking.result(), time.monotonic()
