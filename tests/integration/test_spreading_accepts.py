"""Workers sharing one listening socket: a worker holding more connections than a sibling that
accepts leaves a new connection to it, and takes it itself when the sibling does not."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from app.cli import worker as spreading
from app.cli.worker import NOT_ACCEPTING, SHARES, SpreadingServer
from tests.support import until


class _State:
    def __init__(self) -> None:
        self.connections: set[asyncio.Protocol] = set()


class _Recorder(asyncio.Protocol):
    """Stands in for Uvicorn's protocol: registers itself in its server's set of connections."""

    def __init__(self, state: _State) -> None:
        self.server_state = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server_state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[asyncio.StreamWriter]]:
    writers: list[asyncio.StreamWriter] = []
    yield writers
    for writer in writers:
        writer.close()


class _Worker:
    def __init__(self, listener: socket.socket, slot: int) -> None:
        self.state = _State()
        self.server = SpreadingServer(
            asyncio.get_running_loop(), lambda: _Recorder(self.state), listener.dup(), slot
        )

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        self.server.sockets[0].close()


async def _connect(listener: socket.socket, clients: list[asyncio.StreamWriter]) -> None:
    _, writer = await asyncio.open_connection(*listener.getsockname())
    clients.append(writer)


async def test_a_worker_with_more_connections_leaves_a_new_one_to_its_sibling(
    listener: socket.socket, clients: list[asyncio.StreamWriter]
) -> None:
    busy = _Worker(listener, slot=60)
    try:
        for _ in range(3):
            await _connect(listener, clients)
        await until(lambda: len(busy.state.connections) == 3, "three accepted", timeout=10)
        idle = _Worker(listener, slot=61)
        try:
            await _connect(listener, clients)
            await until(
                lambda: len(idle.state.connections) == 1, "the sibling accepted", timeout=10
            )
            assert len(busy.state.connections) == 3
        finally:
            await idle.close()
    finally:
        await busy.close()


async def test_a_sibling_that_does_not_accept_costs_a_delay_not_the_connection(
    listener: socket.socket, clients: list[asyncio.StreamWriter]
) -> None:
    stuck_slot = 62
    SHARES.publish(stuck_slot, 0)  # claims fewer connections, never accepts
    busy = _Worker(listener, slot=60)
    try:
        for _ in range(3):
            await _connect(listener, clients)
        await until(
            lambda: len(busy.state.connections) == 3, "accepted despite the sibling", timeout=10
        )
    finally:
        SHARES.publish(stuck_slot, NOT_ACCEPTING)
        await busy.close()


async def test_a_queued_burst_is_taken_in_one_wake_up(
    listener: socket.socket,
    clients: list[asyncio.StreamWriter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no sibling holding fewer, every connection waiting is accepted at once: under load
    a wake-up of the accept loop waits a whole turn of the event loop."""
    wake_ups = 0
    readable = SpreadingServer._readable

    async def counted(self: SpreadingServer) -> None:
        nonlocal wake_ups
        wake_ups += 1
        await readable(self)

    monkeypatch.setattr(SpreadingServer, "_readable", counted)
    for _ in range(10):  # queued before anyone accepts
        await _connect(listener, clients)
    worker = _Worker(listener, slot=60)
    try:
        await until(lambda: len(worker.state.connections) == 10, "ten accepted", timeout=10)
        assert wake_ups <= 2  # the one that found them, and the one waiting for more
    finally:
        await worker.close()


async def test_a_closed_server_no_longer_counts_as_accepting(listener: socket.socket) -> None:
    worker = _Worker(listener, slot=60)  # accepting, holding no connection
    assert SHARES.fewer_elsewhere(61, 1)
    await worker.close()
    assert not SHARES.fewer_elsewhere(61, 1)


def test_slots_are_assigned_afresh_and_freed_when_a_worker_exits() -> None:
    class Worker:
        accept_slot: int | None = None

    shares = spreading.AcceptShares(slots=2)
    first, second, third = Worker(), Worker(), Worker()
    shares.assign(first, [])
    shares.assign(second, [first])
    shares.assign(third, [first, second])
    assert (first.accept_slot, second.accept_slot, third.accept_slot) == (0, 1, None)
    shares.publish(0, 5)
    shares.release(first)
    assert not shares.fewer_elsewhere(1, 6)
    shares.assign(third, [second])
    assert third.accept_slot == 0


def test_the_worker_loop_is_uvicorns_own_with_spreading_accepts() -> None:
    import uvloop

    from app.cli.worker import spreading_loop

    loop_class = spreading_loop(uvloop.new_event_loop, 3)
    assert issubclass(loop_class, uvloop.Loop)  # type: ignore[arg-type]
    assert loop_class.accept_slot == 3  # type: ignore[attr-defined]
    assert issubclass(spreading_loop(asyncio.SelectorEventLoop, 0), asyncio.SelectorEventLoop)  # type: ignore[arg-type]
    assert issubclass(spreading_loop(None, 0), asyncio.SelectorEventLoop)  # type: ignore[arg-type]

    def custom() -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    assert spreading_loop(custom, 0) is custom


def test_only_a_server_on_an_inherited_socket_spreads(listener: socket.socket) -> None:
    from app.cli.worker import spreading_loop

    loop = spreading_loop(asyncio.SelectorEventLoop, 63)()

    async def servers() -> tuple[object, object]:
        own = await loop.create_server(asyncio.Protocol, host="127.0.0.1", port=0)
        inherited = await loop.create_server(asyncio.Protocol, sock=listener.dup())
        for server in (own, inherited):
            server.close()
            await server.wait_closed()
        inherited.sockets[0].close()
        return own, inherited

    try:
        own, inherited = loop.run_until_complete(servers())
    finally:
        loop.close()
    assert isinstance(own, asyncio.Server)
    assert isinstance(inherited, SpreadingServer)
    assert not SHARES.fewer_elsewhere(62, 1)  # closed: slot 63 no longer accepting


class _FailingOnce(socket.socket):
    """A listening socket whose first accept fails as no client could make it fail."""

    failed = False

    def accept(self) -> tuple[socket.socket, object]:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EPROTO, "protocol error")
        return super().accept()


async def test_a_failed_accept_is_logged_and_accepting_goes_on(
    listener: socket.socket, clients: list[asyncio.StreamWriter]
) -> None:
    sock = _FailingOnce(fileno=os.dup(listener.fileno()))
    state = _State()
    server = SpreadingServer(asyncio.get_running_loop(), lambda: _Recorder(state), sock, None)
    try:
        await _connect(listener, clients)
        await until(lambda: len(state.connections) == 1, "accepted after the failure", timeout=10)
        assert sock.failed
    finally:
        server.close()
        await server.wait_closed()
        sock.close()
