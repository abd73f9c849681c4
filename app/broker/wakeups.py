"""Wake-ups inside one process: each hands one idle worker task one chance to claim.

The broker feeds it (a Redis sentinel, or a local wake when the run was created here and Redis
is unreachable) and the worker pool's poll ticker feeds it while idle. Workers wait here rather
than on Redis, so a process holds one blocking Redis connection however many workers it runs,
and a process whose workers are all busy leaves sentinels to the others.

A run created in this process while one of its workers is idle need not travel through Redis
and a claim at all: `reserve()` promises the run to that worker (a `Handoff`), the run is
inserted already claimed by this process, and the worker starts it the moment it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any


class Handoff:
    """A run promised to one idle worker: `give` it once committed (or None if creating it
    failed). A worker that stops before taking it marks it `abandoned`, and whoever created
    the run hands it back to the queue."""

    __slots__ = ("_future", "abandoned")

    def __init__(self) -> None:
        self._future: asyncio.Future[dict[str, Any] | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.abandoned = False

    def give(self, run: dict[str, Any] | None) -> bool:
        """Deliver the run; False if its worker is gone (the caller then releases it)."""
        if not self._future.done():
            self._future.set_result(run)
        return not self.abandoned

    async def take(self) -> dict[str, Any] | None:
        try:
            return await asyncio.shield(self._future)
        except asyncio.CancelledError:
            self.abandoned = True
            raise


class WakeHub:
    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[bool | Handoff]] = deque()
        self._kept: deque[bool] = deque()
        self._demand = asyncio.Event()
        self._closed = False
        self.capacity = 1  # the pool sets its size: more tokens than workers would be wasted

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def wanted(self) -> bool:
        """Whether an idle worker here has no wake-up yet (worth taking a sentinel for)."""
        return bool(self._waiters)

    def close(self) -> None:
        """No more hand-offs (the pool is draining); plain wake-ups still pass."""
        self._closed = True

    def _next_waiter(self) -> asyncio.Future[bool | Handoff] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def signal(self, *, poll: bool = False, keep: bool = True) -> bool:
        """Wake one idle worker (`poll`: not for a known run, but to look for one). A wake-up
        nobody waits for is kept (unless not `keep`), up to one per worker, for a worker about
        to wait: a run committed while a worker's claim was in flight is then not left until
        the next poll. Returns whether a worker has or will have it."""
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(poll)
            return True
        if not keep or len(self._kept) >= self.capacity:
            return False
        self._kept.append(poll)
        return True

    def reserve(self) -> Handoff | None:
        """Promise the next run to an idle worker, or None when none is idle."""
        if self._closed:
            return None
        waiter = self._next_waiter()
        if waiter is None:
            return None
        handoff = Handoff()
        waiter.set_result(handoff)
        return handoff

    async def wait(self, timeout: float | None) -> bool | Handoff | None:
        """Block until woken. Returns False for a wake-up about a run, True for a poll, a
        Handoff for a run promised to this worker, None when `timeout` passed first."""
        if self._kept:
            return self._kept.popleft()
        waiter: asyncio.Future[bool | Handoff] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._demand.set()
        try:
            # asyncio.wait, not wait_for: a result set as the timeout fires is not lost.
            await asyncio.wait((waiter,), timeout=timeout)
        except asyncio.CancelledError:
            if waiter.done() and isinstance(waiter.result(), Handoff):
                waiter.result().abandoned = True
            waiter.cancel()
            raise
        if waiter.done():
            return waiter.result()
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        return None

    async def wait_demand(self) -> None:
        """Block until some worker here is waiting without a wake-up."""
        while not self.wanted:
            self._demand.clear()
            await self._demand.wait()
