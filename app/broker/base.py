"""The broker contract both implementations honour."""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.broker.wakeups import WakeHub

END = "__end__"
# A relay that sees RESYNC may have missed live messages (a reconnect): it replays the log.
RESYNC = "__resync__"

# Event ids of claim N start at (N - 1) * SEQ_PER_ATTEMPT + 1: a run claimed again (lost worker,
# drain, retry) keeps its ids rising.
SEQ_PER_ATTEMPT = 1_000_000_000

ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    event: str
    data: bytes  # JSON, encoded once by the publisher and relayed as-is


class Doorbell:
    """A wait of at most some seconds that another task can end early: one future and one
    timer handle, where asyncio.wait_for would start a task for each wait."""

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def ring(self) -> None:
        """End the wait in progress, if any."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


class Subscription:
    """Live events of one run, delivered to one local listener. A deque and a doorbell
    rather than an asyncio.Queue with wait_for: no task and no timer per event."""

    __slots__ = ("run_id", "_events", "_bell")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._events: deque[Event] = deque()
        self._bell = Doorbell()

    def put(self, event: Event) -> None:
        self._events.append(event)
        self._bell.ring()

    def take(self) -> Event | None:
        """An event already queued, or None."""
        return self._events.popleft() if self._events else None

    async def get(self, timeout: float) -> Event | None:
        """The next event, waiting at most `timeout` seconds (None then)."""
        if self._events:
            return self._events.popleft()
        await self._bell.wait(timeout)
        return self._events.popleft() if self._events else None


def cancel_message(run_id: str, action: str) -> dict[str, Any]:
    """The control message that stops a run wherever it executes."""
    return {"type": "cancel", "run_id": run_id, "action": action}


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Broker(abc.ABC):
    """Redis in production, memory in the embedded mode. Never the source of truth."""

    kind: str
    shared: bool  # whether several processes can use it together

    def __init__(self) -> None:
        self._control_handlers: list[ControlHandler] = []
        self.wakeups = WakeHub()

    def on_control(self, handler: ControlHandler) -> None:
        self._control_handlers.append(handler)

    async def _dispatch_control(self, message: dict[str, Any]) -> None:
        for handler in self._control_handlers:
            await handler(message)

    async def start(self) -> None:  # noqa: B027 - optional hook
        pass

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @property
    def healthy(self) -> bool:
        return True

    async def ping(self) -> bool:
        """Whether the broker answers now (readiness), as opposed to `healthy`, the last seen."""
        return True

    def claim_local(self, run_id: str, base_seq: int) -> None:  # noqa: B027 - optional hook
        """This process executes the run from now on: its events start above `base_seq`."""

    def release_local(self, run_id: str, *, ended: bool) -> None:  # noqa: B027 - optional hook
        """The run stopped executing here: it `ended`, or it goes on elsewhere."""

    async def flush(self) -> None:  # noqa: B027 - optional hook (memory: nothing pending)
        """Return once every event published so far is in its run's replay log (or could not
        be written there). A run's checkpoint is saved after this: a run taken over from its
        checkpoint does not emit again what the steps before it emitted."""

    async def publish_end(self, run_id: str, seq: int, status: str) -> None:
        """The run is over: relays stop, waiters re-read Postgres."""
        data = b'{"status":"%s"}' % status.encode()
        await self.publish(run_id, Event(seq, END, data), final=True)

    @abc.abstractmethod
    async def wake(self) -> None:
        """Tell one idle worker somewhere that there may be work."""

    async def wait_wake(self, timeout: float | None) -> bool | None:
        """Block until woken: False for a wake-up about a new run, True for a poll tick,
        None when `timeout` passed first."""
        return await self.wakeups.wait(timeout)

    @abc.abstractmethod
    async def publish(self, run_id: str, event: Event, *, final: bool = False) -> None:
        """Append to the run's replay log and relay to live listeners, in one round trip."""

    @abc.abstractmethod
    def publish_nowait(self, run_id: str, event: Event) -> None:
        """`publish` for a run executing here (`claim_local`) by a caller that cannot wait:
        a graph's stream hooks, called inside the graph's own code."""

    @abc.abstractmethod
    async def replay(self, run_id: str, after_seq: int) -> list[Event]:
        """Logged events with seq > after_seq, in order."""

    @abc.abstractmethod
    async def last_logged(self, run_id: str) -> Event | None:
        """The run's last logged event (its end, once it has ended), without reading the
        rest of a long log."""

    @abc.abstractmethod
    async def subscribe(self, run_id: str) -> Subscription:
        """Start receiving the run's live events; returns once no later event can be missed."""

    @abc.abstractmethod
    async def unsubscribe(self, sub: Subscription) -> None: ...

    @abc.abstractmethod
    async def send_control(self, message: dict[str, Any]) -> None:
        """Deliver a control message (cancel) to every process."""

    @abc.abstractmethod
    async def drop_log(self, run_id: str) -> None:
        """Forget a run's replay log (the run was deleted)."""
