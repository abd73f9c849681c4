"""Wake-ups inside one process: each hands one idle worker task one chance to claim.

The broker feeds it (a Redis sentinel, or a local wake when the run was created here and Redis
is unreachable) and the worker pool's poll ticker feeds it while idle. Workers wait here rather
than on Redis, so a process holds one blocking Redis connection however many workers it runs,
and a process whose workers are all busy leaves sentinels to the others.
"""

from __future__ import annotations

import asyncio


class WakeHub:
    def __init__(self) -> None:
        self._tokens: asyncio.Queue[bool] = asyncio.Queue()
        self._waiting = 0
        self._demand = asyncio.Event()
        self.capacity = 1  # the pool sets its size: more tokens than workers would be wasted

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def wanted(self) -> bool:
        """Whether an idle worker here has no wake-up yet (worth taking a sentinel for)."""
        return self._waiting > self._tokens.qsize()

    def signal(self, *, poll: bool = False) -> bool:
        """Wake one idle worker (`poll`: not for a known run, but to look for one). A wake-up
        nobody waits for is kept, up to one per worker, for a worker about to wait: a run
        committed while a worker's claim was in flight is then not left until the next poll."""
        if self._tokens.qsize() >= max(self._waiting, self.capacity):
            return False
        self._tokens.put_nowait(poll)
        return True

    async def wait(self, timeout: float | None) -> bool | None:
        """Block until woken. Returns False for a wake-up about a run, True for a poll, None
        when `timeout` passed first."""
        self._waiting += 1
        self._demand.set()
        try:
            return await asyncio.wait_for(self._tokens.get(), timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting -= 1

    async def wait_demand(self) -> None:
        """Block until some worker here is waiting without a wake-up."""
        while not self.wanted:
            self._demand.clear()
            await self._demand.wait()
