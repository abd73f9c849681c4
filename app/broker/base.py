"""The broker contract both implementations honour."""

from __future__ import annotations

import abc
import asyncio
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


class Subscription:
    """Live events of one run, delivered to one local listener."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def take(self) -> Event | None:
        """An event already queued, or None."""
        return self.queue.get_nowait() if not self.queue.empty() else None

    async def get(self, timeout: float) -> Event | None:
        if not self.queue.empty():
            return self.queue.get_nowait()  # no timer for an event already here
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


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
    async def replay(self, run_id: str, after_seq: int) -> list[Event]:
        """Logged events with seq > after_seq, in order."""

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
