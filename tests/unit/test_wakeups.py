"""The in-process wake hub: one wake-up reaches one idle worker, none piles up unbounded."""

from __future__ import annotations

import asyncio

from app.broker.wakeups import WakeHub


async def _waiting(hub: WakeHub, n: int) -> None:
    async with asyncio.timeout(2.0):
        while hub.waiting < n:
            await asyncio.sleep(0)


async def test_one_signal_wakes_one_waiter() -> None:
    hub = WakeHub()
    waiters = [asyncio.create_task(hub.wait(5.0)) for _ in range(3)]
    await _waiting(hub, 3)
    assert hub.signal() is True
    done, pending = await asyncio.wait(waiters, timeout=0.2)
    assert len(done) == 1 and done.pop().result() is False
    hub.signal(poll=True)
    done, pending = await asyncio.wait(pending, timeout=0.2)
    assert len(done) == 1 and done.pop().result() is True
    for task in pending:
        task.cancel()


async def test_wait_times_out_with_none() -> None:
    assert await WakeHub().wait(0.01) is None


async def test_unclaimed_signals_are_capped_at_the_pool_size() -> None:
    hub = WakeHub()
    hub.capacity = 2
    assert [hub.signal() for _ in range(5)] == [True, True, False, False, False]
    # Kept for workers about to wait: both get one at once, a third waits.
    assert await hub.wait(0.01) is False
    assert await hub.wait(0.01) is False
    assert await hub.wait(0.01) is None


async def test_demand_follows_idle_workers_without_a_wake_up() -> None:
    hub = WakeHub()
    assert not hub.wanted
    waiter = asyncio.create_task(hub.wait(5.0))
    async with asyncio.timeout(1.0):
        await hub.wait_demand()
    assert hub.wanted
    hub.signal()
    assert not hub.wanted  # the one idle worker has its wake-up already
    assert await waiter is False
