"""The embedded broker: one process, everything in memory."""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict, deque
from typing import Any

from app.broker.base import Broker, Event, Subscription

_FINISHED_LOG_TTL = 3600.0


class MemoryBroker(Broker):
    kind = "memory"
    shared = False

    def __init__(self, *, maxlen: int) -> None:
        super().__init__()
        self._maxlen = maxlen
        self._logs: dict[str, deque[Event]] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()  # run id → end, oldest first
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    async def wake(self) -> None:
        self.wakeups.signal()

    async def publish(self, run_id: str, event: Event, *, final: bool = False) -> None:
        self._publish(run_id, event, final)

    def publish_nowait(self, run_id: str, event: Event) -> None:
        self._publish(run_id, event, False)

    def _publish(self, run_id: str, event: Event, final: bool) -> None:
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = deque(maxlen=self._maxlen)
        log.append(event)
        for sub in self._subs.get(run_id, ()):
            sub.put(event)
        if final:
            self._finished[run_id] = time.monotonic()
            self._finished.move_to_end(run_id)
            self._forget_old()

    def _forget_old(self) -> None:
        """Drop the logs of runs that ended longer ago than their time to live: the oldest
        ends come first, so this stops at the first one still kept."""
        horizon = time.monotonic() - _FINISHED_LOG_TTL
        while self._finished:
            run_id, ended = next(iter(self._finished.items()))
            if ended >= horizon:
                return
            self._finished.popitem(last=False)
            self._logs.pop(run_id, None)

    async def replay(self, run_id: str, after_seq: int) -> list[Event]:
        return [e for e in self._logs.get(run_id, ()) if e.seq > after_seq]

    async def last_logged(self, run_id: str) -> Event | None:
        log = self._logs.get(run_id)
        return log[-1] if log else None

    async def subscribe(self, run_id: str) -> Subscription:
        sub = Subscription(run_id)
        self._subs[run_id].add(sub)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                self._subs.pop(sub.run_id, None)

    async def send_control(self, message: dict[str, Any]) -> None:
        await self._dispatch_control(message)

    async def drop_log(self, run_id: str) -> None:
        self._logs.pop(run_id, None)
        self._finished.pop(run_id, None)
