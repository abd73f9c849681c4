"""The pending-run count that MAX_PENDING_RUNS is held against, asked sparingly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# One COUNT per process per half second is plenty to hold a bound.
PENDING_COUNT_SECS = 0.5


class PendingCount:
    """At most one COUNT per PENDING_COUNT_SECS per process: requests arriving while it is
    asked share that one answer instead of each sending its own (a burst of creates)."""

    def __init__(self, ask: Callable[[], Awaitable[int]]) -> None:
        self._ask = ask
        self._value = 0
        self._at = float("-inf")
        self._asking: asyncio.Future[int] | None = None

    async def count(self) -> int:
        if time.monotonic() - self._at <= PENDING_COUNT_SECS:
            return self._value
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._ask())
            self._asking.add_done_callback(self._answered)
        return await asyncio.shield(self._asking)

    def _answered(self, asking: asyncio.Future[int]) -> None:
        self._asking = None
        if not asking.cancelled() and asking.exception() is None:
            self._value, self._at = asking.result(), time.monotonic()
