"""The in-process wake hub: one wake-up reaches one idle worker, none piles up unbounded."""

from __future__ import annotations

import asyncio
import contextlib

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


async def test_a_wake_up_not_to_keep_is_refused_when_nobody_waits() -> None:
    """A Redis sentinel popped for a worker that was meanwhile handed a local run goes back
    to the shared list, rather than waiting here until a worker's run ends."""
    hub = WakeHub()
    hub.capacity = 4
    assert hub.signal(keep=False) is False
    assert await hub.wait(0.01) is None  # nothing was kept
    waiter = asyncio.create_task(hub.wait(5.0))
    await _waiting(hub, 1)
    assert hub.signal(keep=False) is True
    assert await waiter is False


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


async def test_a_run_is_promised_to_an_idle_worker_only() -> None:
    hub = WakeHub()
    assert hub.reserve() is None  # nobody idle: the run goes to the queue
    waiter = asyncio.create_task(hub.wait(5.0))
    await _waiting(hub, 1)
    handoff = hub.reserve()
    assert handoff is not None and await waiter is handoff
    assert hub.reserve() is None  # that worker is taken
    taker = asyncio.create_task(handoff.take())
    assert handoff.give({"run_id": "r1"}) is True
    assert await taker == {"run_id": "r1"}


async def test_a_worker_stopped_before_taking_its_run_gives_it_back() -> None:
    hub = WakeHub()
    waiter = asyncio.create_task(hub.wait(5.0))
    await _waiting(hub, 1)
    handoff = hub.reserve()
    assert handoff is not None
    waiter.cancel()  # the pool drains before the worker saw its hand-off
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert handoff.give({"run_id": "r1"}) is False  # the creator hands it back to the queue


async def test_no_promises_while_draining() -> None:
    hub = WakeHub()
    waiter = asyncio.create_task(hub.wait(5.0))
    await _waiting(hub, 1)
    hub.close()
    assert hub.reserve() is None
    assert hub.signal() is True and await waiter is False  # plain wake-ups still pass
