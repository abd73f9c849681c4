"""Webhooks: POST a finished run to the URL its creator gave, with retries and backoff, in the
background so a slow or dead receiver never holds a worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from app import serde
from app.observability import metrics

log = logging.getLogger(__name__)


class WebhookSender:
    def __init__(self, *, max_attempts: int, timeout: float) -> None:
        self._max_attempts = max_attempts
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        self._pending: set[asyncio.Task[bool]] = set()
        self.failed = 0
        self.delivered = 0

    def send(self, url: str, payload: dict[str, Any], *, run_id: str) -> None:
        task = asyncio.create_task(self.deliver(url, payload, run_id=run_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def deliver(self, url: str, payload: dict[str, Any], *, run_id: str) -> bool:
        body = serde.dumps(payload)
        headers = {"content-type": "application/json", "user-agent": "runyard-webhook"}
        for attempt in range(1, self._max_attempts + 1):
            reason: str
            try:
                response = await self._client.post(url, content=body, headers=headers)
                if response.is_success:
                    self.delivered += 1
                    metrics.WEBHOOKS_DELIVERED.inc()
                    return True
                reason = f"HTTP {response.status_code}"
                # A client error other than throttling will not get better by retrying.
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt < self._max_attempts:
                delay = min(0.5 * 2 ** (attempt - 1), 30.0)
                log.info(
                    "webhook for run %s failed (%s); attempt %d of %d in %.1f s",
                    run_id,
                    reason,
                    attempt + 1,
                    self._max_attempts,
                    delay,
                )
                await asyncio.sleep(delay)
        self.failed += 1
        metrics.WEBHOOKS_FAILED.inc()
        log.warning("webhook for run %s to %s gave up: %s", run_id, url, reason)
        return False

    async def close(self, grace: float = 5.0) -> None:
        """Give deliveries in flight a moment, then stop."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=grace)
        for task in list(self._pending):
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._client.aclose()
