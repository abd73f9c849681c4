"""The embedded broker forgets a finished run's log once its time to live has passed."""

from __future__ import annotations

import pytest

from app.broker import Event
from app.broker import memory as memory_module
from app.broker.memory import MemoryBroker


async def test_finished_logs_are_forgotten_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(memory_module.time, "monotonic", lambda: now[0])
    broker = MemoryBroker(maxlen=100)
    for i, run in enumerate(("a", "b", "c")):
        now[0] = 1000.0 + i * 10
        await broker.publish(run, Event(1, "custom", b"{}"))
        await broker.publish(run, Event(2, "__end__", b"{}"), final=True)
    await broker.publish("running", Event(1, "custom", b"{}"))  # not ended: always kept
    # "a" ends again later (a run claimed again): it is now the newest end.
    now[0] = 1030.0
    await broker.publish("a", Event(3, "__end__", b"{}"), final=True)

    now[0] = 1015.0 + memory_module._FINISHED_LOG_TTL
    await broker.publish("d", Event(1, "__end__", b"{}"), final=True)
    assert await broker.replay("b", 0) == []  # ended at 1010: past its time
    assert [e.seq for e in await broker.replay("c", 0)] == [1, 2]  # ended at 1020
    assert [e.seq for e in await broker.replay("a", 0)] == [1, 2, 3]  # ended again at 1030
    assert [e.seq for e in await broker.replay("running", 0)] == [1]

    now[0] = 1031.0 + memory_module._FINISHED_LOG_TTL
    await broker.publish("e", Event(1, "__end__", b"{}"), final=True)
    assert await broker.replay("a", 0) == [] and await broker.replay("c", 0) == []
    assert [e.seq for e in await broker.replay("d", 0)] == [1]
