"""The pending-run count behind MAX_PENDING_RUNS: one COUNT shared by concurrent requests."""

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


async def test_a_stale_count_is_asked_again_and_a_failure_is_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([RuntimeError("database away"), 3, 4])

    async def ask() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    pending = PendingCount(ask)
    with pytest.raises(RuntimeError):
        await pending.count()
    assert await pending.count() == 3
    monkeypatch.setattr(capacity, "PENDING_COUNT_SECS", -1.0)
    assert await pending.count() == 4
