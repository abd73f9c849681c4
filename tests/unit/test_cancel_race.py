"""A cancel tells the run's worker before it reads the run: the worker may stop the run
before the read, and the cancel that did it must not be answered 404."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.services.errors import NotFound
from app.services.runs import cancel
from app.store.db import utcnow


class _Runs:
    def __init__(self, row: dict[str, Any], log: list[str]) -> None:
        self.row = row
        self.log = log

    async def get(self, run_id: str, thread_id: str | None = None) -> dict[str, Any]:
        await asyncio.sleep(0)  # a round trip: the message sent before it goes out meanwhile
        self.log.append("read")
        return dict(self.row)


class _Broker:
    def __init__(self, on_message: Callable[[], None], log: list[str]) -> None:
        self.on_message = on_message
        self.log = log

    async def send_control(self, message: dict[str, Any]) -> None:
        self.log.append("told")
        self.on_message()


class _Container:
    def __init__(self, row: dict[str, Any], on_message: Callable[[], None]) -> None:
        self.log: list[str] = []
        self.runs = _Runs(row, self.log)
        self.broker = _Broker(on_message, self.log)
        self.db = None  # stop_run must not be reached in these cases


def _running() -> dict[str, Any]:
    return {"run_id": "r", "thread_id": "t", "status": "running", "ended_at": None}


async def test_a_run_stopped_by_the_cancel_before_its_read_is_cancelled() -> None:
    row = _running()

    def worker_stops_it() -> None:  # faster than the read
        row.update(status="interrupted", ended_at=utcnow())

    c = _Container(row, worker_stops_it)
    assert await cancel(c, "t", "r", wait=False, action="interrupt") is None  # type: ignore[arg-type]
    assert c.log[:2] == ["told", "read"]


@pytest.mark.parametrize("before", [timedelta(hours=1), timedelta(0)])
async def test_a_run_interrupted_before_the_request_is_not_found(before: timedelta) -> None:
    row = {**_running(), "status": "interrupted", "ended_at": utcnow() - before}
    c = _Container(row, lambda: None)
    with pytest.raises(NotFound):
        await cancel(c, "t", "r", wait=False, action="interrupt")  # type: ignore[arg-type]


async def test_a_rollback_reads_the_run_before_telling_its_worker() -> None:
    # The worker deletes a rolled-back run as it stops it: told first, the read could miss it.
    row = {**_running(), "status": "success", "ended_at": utcnow()}
    c = _Container(row, lambda: None)
    with pytest.raises(NotFound):
        await cancel(c, "t", "r", wait=False, action="rollback")  # type: ignore[arg-type]
    assert c.log == ["read"]
