"""The Gunicorn worker of `runyard serve`: Uvicorn's, with connections spread over the workers.

All workers accept on the listening socket Gunicorn shares between them. Uvicorn's event
loop (uvloop or asyncio) accepts every connection waiting whenever it is woken, so the
worker that runs first takes a whole burst: the 16 connections a client opened at once all
landed in one worker in most starts, while the other sat idle and runs were handed to it
through Redis. On two cores the sibling, though woken too, often has no core to run on
before the burst is taken.

Here each worker accepts connections only while no sibling holds fewer, and publishes how many
it holds in memory shared with the others (`AcceptShares`, set up by the Gunicorn master). A
worker holding more than a sibling that accepts lets a new connection wait `DEFER_SECS` for
that sibling before taking it itself: a busy, stuck or dying sibling costs a connection that
delay, never the connection. The socket stays shared, so connections queued when a worker
dies are accepted by another (a socket per worker, SO_REUSEPORT, spreads connections too, but
resets those queued on a killed worker's socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import socket
from collections.abc import Callable, Sized
from typing import Any

from uvicorn_worker import UvicornWorker

log = logging.getLogger("runyard.serve")

# How long a worker holding more connections than a sibling leaves a new one to it.
DEFER_SECS = 0.005
# Out of file descriptors (or buffers): wait before accepting again instead of spinning, as
# asyncio's own accept loop does.
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
RESOURCE_PAUSE_SECS = 1.0
# Any other failure to accept is logged and accepting goes on after this pause: a worker
# whose accept loop died would go on answering Gunicorn's heartbeat and serve no one.
ERROR_PAUSE_SECS = 0.1
NOT_ACCEPTING = -1


class AcceptShares:
    """Each worker's open connections, in a slot of an anonymous shared mapping that the
    Gunicorn master makes and its forked workers inherit; NOT_ACCEPTING in a slot no worker
    accepts on. The master assigns slots (it is single-threaded); each worker writes only its
    own, so plain aligned int writes suffice."""

    def __init__(self, slots: int = 64) -> None:
        self._memory = mmap.mmap(-1, slots * 4)  # MAP_SHARED | MAP_ANONYMOUS
        self._values = memoryview(self._memory).cast("i")
        for slot in range(slots):
            self._values[slot] = NOT_ACCEPTING

    # The master's side.
    def assign(self, worker: Any, siblings: Any) -> None:
        taken = {getattr(sibling, "accept_slot", None) for sibling in siblings}
        worker.accept_slot = next(
            (slot for slot in range(len(self._values)) if slot not in taken), None
        )

    def release(self, worker: Any) -> None:
        slot = getattr(worker, "accept_slot", None)
        if slot is not None:
            self._values[slot] = NOT_ACCEPTING

    # A worker's side.
    def publish(self, slot: int, connections: int) -> None:
        self._values[slot] = connections

    def fewer_elsewhere(self, slot: int, connections: int) -> bool:
        """Whether another accepting worker holds fewer connections than `connections`."""
        values = self._values
        return any(
            NOT_ACCEPTING < values[other] < connections
            for other in range(len(values))
            if other != slot
        )


SHARES = AcceptShares()


def pre_fork(server: Any, worker: Any) -> None:
    SHARES.assign(worker, server.WORKERS.values())


def child_exit(server: Any, worker: Any) -> None:
    SHARES.release(worker)


class SpreadingServer:
    """What Uvicorn needs of an asyncio Server (close, wait_closed) over an accept loop that
    takes connections while no sibling worker holds fewer, and defers to one that does. The
    socket is the caller's to close."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.Protocol],
        sock: socket.socket,
        slot: int | None,
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._slot = slot
        # Uvicorn's set of this process's open connections, found on the first protocol.
        self._connections: Sized = ()
        # Connections accepted, not yet handed to Uvicorn: held all the same.
        self._setting_up: set[asyncio.Task[None]] = set()
        sock.setblocking(False)
        self._publish()
        self._task: asyncio.Task[None] | None = loop.create_task(self._accept_forever())

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    def is_serving(self) -> bool:
        return self._task is not None and not self._task.done()

    def close(self) -> None:
        if self._slot is not None:
            SHARES.publish(self._slot, NOT_ACCEPTING)
            self._slot = None
        if self._task is not None:
            self._task.cancel()
        for setting_up in self._setting_up:  # accepted, not yet Uvicorn's: closed with us
            setting_up.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _held(self) -> int:
        return len(self._connections) + len(self._setting_up)

    def _publish(self) -> None:
        if self._slot is not None:
            SHARES.publish(self._slot, self._held())

    def _outnumbers_a_sibling(self) -> bool:
        return self._slot is not None and SHARES.fewer_elsewhere(self._slot, self._held())

    async def _readable(self) -> None:
        ready = self._loop.create_future()
        fd = self._sock.fileno()
        self._loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            self._loop.remove_reader(fd)

    async def _accept_forever(self) -> None:
        while True:
            await self._readable()
            self._publish()
            if self._outnumbers_a_sibling():
                await asyncio.sleep(DEFER_SECS)
            # Then whatever is waiting, for as long as no sibling holds fewer: a burst costs
            # one wake-up of this loop, not one per connection (under load each is the
            # length of a loop turn, milliseconds).
            while True:
                try:
                    conn, _ = self._sock.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    break  # none left: a sibling took it, or the client gave up
                except OSError as exc:
                    pause = (
                        RESOURCE_PAUSE_SECS if exc.errno in _RESOURCE_ERRORS else ERROR_PAUSE_SECS
                    )
                    log.error("cannot accept a connection: %s; pausing %.1f s", exc, pause)
                    await asyncio.sleep(pause)
                    break
                setting_up = self._loop.create_task(self._serve(conn))
                self._setting_up.add(setting_up)
                setting_up.add_done_callback(self._set_up)
                self._publish()
                if self._outnumbers_a_sibling():
                    break

    def _set_up(self, task: asyncio.Task[None]) -> None:
        self._setting_up.discard(task)
        self._publish()

    def _counted_protocol(self) -> asyncio.Protocol:
        """Uvicorn's protocol, publishing the count again when its connection closes: a count
        left high after a burst's connections closed made the siblings take the next burst."""
        protocol = self._protocol_factory()
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            lost(exc)
            self._publish()

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    async def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _, protocol = await self._loop.connect_accepted_socket(self._counted_protocol, conn)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                conn.close()
            if isinstance(exc, OSError):  # the client reset it as it was accepted
                log.debug("connection lost as it was accepted: %s", exc)
            elif isinstance(exc, Exception):
                log.exception("a connection could not be set up")
            else:  # cancelled: the server is closing
                raise
            return
        if not self._connections:
            state = getattr(protocol, "server_state", None)
            self._connections = getattr(state, "connections", ())


class _SpreadingAccepts:
    """An event loop whose servers on an inherited TCP socket are SpreadingServers."""

    accept_slot: int | None = None

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], *args: Any, **kwargs: Any
    ) -> Any:
        sock = kwargs.get("sock")
        if (
            args
            or kwargs.get("host") is not None
            or kwargs.get("port") is not None
            or kwargs.get("ssl") is not None
            or sock is None
            or sock.family not in (socket.AF_INET, socket.AF_INET6)
        ):
            return await super().create_server(protocol_factory, *args, **kwargs)  # type: ignore[misc]
        return SpreadingServer(self, protocol_factory, sock, self.accept_slot)  # type: ignore[arg-type]


def spreading_loop(
    factory: Callable[[], asyncio.AbstractEventLoop] | None, slot: int | None
) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop class of Uvicorn's loop factory (uvloop's or asyncio's), with spreading
    accepts; any other factory as it is."""
    if factory is None:
        loop_class: type = asyncio.SelectorEventLoop
    elif isinstance(factory, type):
        loop_class = factory
    else:
        try:
            import uvloop
        except ImportError:
            return factory
        if factory is not uvloop.new_event_loop:
            return factory
        loop_class = uvloop.Loop
    name = f"Spreading{loop_class.__name__}"
    return type(name, (_SpreadingAccepts, loop_class), {"accept_slot": slot})


class RunyardWorker(UvicornWorker):
    """Uvicorn's Gunicorn worker, spreading connections over its siblings."""

    accept_slot: int | None = None  # set by pre_fork in the master

    def run(self) -> None:
        loop_factory = spreading_loop(self.config.get_loop_factory(), self.accept_slot)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self._serve())
