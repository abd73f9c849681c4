"""Final rows of the runs executing in this process, for waiters in this process.

A `runs/wait` or `join` whose run executes here learns its end, and gets the finished row, from
the worker that finalized it: no subscription, no replay and no re-read of Postgres. A run that
leaves this process unfinished (its lease lost, handed back at a drain, retried later) settles
with None, and its waiters go the way of a run elsewhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

Row = dict[str, Any]


class RunOutcomes:
    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Row | None]] = {}

    def track(self, run_id: str) -> None:
        """The run starts executing here."""
        if run_id not in self._pending:
            self._pending[run_id] = asyncio.get_running_loop().create_future()

    def settle(self, run_id: str, row: Row | None) -> None:
        """The run was finalized here (its committed row), or left this process (None)."""
        future = self._pending.pop(run_id, None)
        if future is not None and not future.done():
            future.set_result(row)

    def local(self, run_id: str) -> asyncio.Future[Row | None] | None:
        """The future of a run executing here, or None."""
        return self._pending.get(run_id)
