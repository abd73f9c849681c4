"""The pending-run count behind MAX_PENDING_RUNS: one COUNT shared by concurrent requests,
and none waited for once there is an answer."""

from __future__ import annotations

import asyncio

import pytest

from app.services import capacity
from app.services.capacity import PendingCount


async def test_concurrent_requests_share_one_count() -> None:
    asked = 0
    release = asyncio.Event()

    async def ask() -> int:
        nonlocal asked
        asked += 1
        await release.wait()
        return 7

    pending = PendingCount(ask)
    waiting = [asyncio.create_task(pending.count()) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [7] * 50
    assert asked == 1
    assert await pending.count() == 7  # still fresh: not asked again
    assert asked == 1


async def test_an_aged_count_is_answered_at_once_while_the_next_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = [3, 4]
    release = asyncio.Event()
    asked = 0

    async def ask() -> int:
        nonlocal asked
        asked += 1
        if asked > 1:
            await release.wait()
        return answers[asked - 1]

    pending = PendingCount(ask)
    assert await pending.count() == 3
    monkeypatch.setattr(capacity, "PENDING_COUNT_SECS", -1.0)
    # Aged: the old answer at once, one new COUNT for all of them, none waited for.
    assert [await pending.count() for _ in range(5)] == [3] * 5
    await asyncio.sleep(0)  # the COUNT's task starts
    assert asked == 2
    release.set()
    async with asyncio.timeout(5):
        while await pending.count() != 4:
            await asyncio.sleep(0)


async def test_a_failed_count_is_not_kept() -> None:
    answers = iter([RuntimeError("database away"), 3])

    async def ask() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    pending = PendingCount(ask)
    with pytest.raises(RuntimeError):
        await pending.count()
    assert await pending.count() == 3
