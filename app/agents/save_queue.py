"""A run's checkpoint saves, sent to Postgres behind the run rather than one by one.

With durability "async" (LangGraph's default) a graph does not wait for its checkpoints: each
save runs in the background while the next step executes, but the saves of one run wait for
one another, so a step's checkpoint, the checkpoint after it and the writes in between each
cost a round trip and a commit. Handed to this queue instead, a save returns at once, and what
the run hands over within `LINGER_SECS`, or while a batch is in flight, goes out together:
one round trip and one transaction each (the saver's `save_together`). A short run's saves
(a one-node graph makes three checkpoints and three sets of writes) go in one batch, sent
when the run drains the queue at its end, which does not wait for the linger; a long run's
checkpoints are stored at most that much later than LangGraph's own async saving would.

The executor drains the queue before the run is finalized, or hands the saves still queued to
the finalize, which stores them in its own statement, so a run's status never says more than
its checkpoints hold; reads through the saver drain it first. A batch the database
refused fails the next save and the drain with its error, as a failed save fails the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from app.broker.base import Doorbell

# How long the first save of a batch waits for the run's next ones. Long enough for a short
# run to reach its end on a busy server, where its saves then go with its finalize (2 ms was
# too short under load: most one-node runs sent a batch of their own first); short beside
# any step that calls a model or a tool, which a lost worker's run would do again anyway.
LINGER_SECS = 0.02

Save = Callable[[], Awaitable[Any]]


class BatchSaver(Protocol):
    async def save_together(self, saves: Sequence[Save]) -> None: ...


class SaveQueue:
    def __init__(self, saver: BatchSaver, before: Save | None = None) -> None:
        self._saver = saver
        self._before = before  # awaited before each batch
        self._queued: list[Save] = []
        self._sending: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._linger = Doorbell()
        self._hurry = False  # a drain is waiting: no linger

    def add(self, save: Save) -> None:
        """Queue a save (the saver's own call, not yet made); raises a failed batch's error."""
        self.raise_failure()
        self._queued.append(save)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(
                self._send(), name="runyard-checkpoint-saves"
            )

    async def _send(self) -> None:
        if not self._hurry:
            await self._linger.wait(LINGER_SECS)
        while self._queued and self._error is None:
            batch, self._queued = self._queued, []
            try:
                if self._before is not None:
                    await self._before()
                await self._saver.save_together(batch)
            except Exception as exc:  # noqa: BLE001 - handed to the run by add() and drain()
                self._error = exc

    async def drain(self) -> None:
        """Return once every save handed over is stored; raise what failed instead."""
        self._hurry = True
        self._linger.ring()
        try:
            while self._sending is not None and not self._sending.done():
                # Shielded: a run cancelled while draining leaves its saves to finish.
                await asyncio.shield(self._sending)
        finally:
            self._hurry = False
        self.raise_failure()

    async def hand_over(self) -> list[Save]:
        """The saves not sent yet, taken from the queue for the caller to store, once those
        already on their way are stored (raises what failed instead, as `drain`)."""
        saves, self._queued = self._queued, []
        await self.drain()  # nothing left to send: the batch lingering for more wakes and ends
        return saves

    def raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
