"""The cron scheduler of one process: every CRON_CHECK_SECS, fire the crons that are due.

Every process runs one. They need no coordination of their own: the database hands each
due cron to one process at a time (services/crons.py, store/crons.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.container import Container
from app.services import crons as cron_service

log = logging.getLogger(__name__)

# Crons claimed per transaction. A full batch means more may be due: check again at once.
BATCH = 50


class CronScheduler:
    def __init__(self, c: Container) -> None:
        self.c = c
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="runyard-cron-scheduler")

    async def stop(self) -> None:
        """Cancelling mid-firing is safe: the claim is rolled back and the cron stays due."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None

    async def _forever(self) -> None:
        interval = self.c.settings.CRON_CHECK_SECS
        while True:
            try:
                done = await cron_service.fire_due(self.c, BATCH)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cron check failed, retrying: %s", exc)
                done = 0
            if done < BATCH:
                await asyncio.sleep(interval)
