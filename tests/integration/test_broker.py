"""The broker contract, held by the Redis broker (real Redis) and the in-memory one alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import ormsgpack
import pytest
import redis.asyncio as aioredis

from app.broker import Broker, Event, create_broker
from app.broker.base import RESYNC, SEQ_PER_ATTEMPT
from tests.support import REDIS_URL, redis_prefix


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    with redis_prefix() as prefix:  # its own: e2e servers block on the session's wake list
        if request.param == "redis":
            made = create_broker(REDIS_URL, prefix=prefix, maxlen=1000, ttl=60)
        else:
            made = create_broker(None, prefix="", maxlen=1000, ttl=60)
        await made.start()
        yield made
        await made.close()


@contextlib.asynccontextmanager
async def _redis_pair() -> AsyncIterator[tuple[Any, Any, str]]:
    """Two processes' Redis brokers on one prefix of their own, and the prefix."""
    with redis_prefix() as prefix:
        one = create_broker(REDIS_URL, prefix=prefix, maxlen=1000, ttl=60)
        two = create_broker(REDIS_URL, prefix=prefix, maxlen=1000, ttl=60)
        await one.start()
        await two.start()
        try:
            yield one, two, prefix
        finally:
            await one.close()
            await two.close()


def _event(seq: int) -> Event:
    return Event(seq, "custom", b'{"n":%d}' % seq)


async def test_replay_returns_events_after_a_sequence_number(broker: Broker) -> None:
    for seq in range(1, 6):
        await broker.publish("run-replay", _event(seq))
    assert [e.seq for e in await broker.replay("run-replay", 0)] == [1, 2, 3, 4, 5]
    tail = await broker.replay("run-replay", 3)
    assert [(e.seq, e.event, e.data) for e in tail] == [
        (4, "custom", b'{"n":4}'),
        (5, "custom", b'{"n":5}'),
    ]


async def test_events_keep_their_bytes_and_ids_of_a_later_claim(broker: Broker) -> None:
    """Non-ASCII data, quotes and newlines inside JSON strings, and ids of a run's second
    claim come back from the log and the channel exactly as published."""
    run_id = "run-bytes"
    base = SEQ_PER_ATTEMPT  # the second claim's ids
    data = orjson.dumps({"text": 'ünïcødé ✓ "quoted"\nline', "n": [1, 2.5, None]})
    sub = await broker.subscribe(run_id)
    try:
        for seq in (base + 1, base + 2):
            await broker.publish(run_id, Event(seq, "messages|child:1", data))
        live = [await sub.get(5.0), await sub.get(5.0)]
    finally:
        await broker.unsubscribe(sub)
    expected = [(base + 1, "messages|child:1", data), (base + 2, "messages|child:1", data)]
    assert [(e.seq, e.event, e.data) for e in live if e is not None] == expected
    assert [(e.seq, e.event, e.data) for e in await broker.replay(run_id, base)] == expected


async def test_a_stray_byte_does_not_stop_the_events_after_it(broker: Broker) -> None:
    sub = await broker.subscribe("run-stray")
    try:
        await asyncio.wait_for(broker.publish("run-stray", Event(1, "custom", b'"\xff"')), 5)
        await asyncio.wait_for(broker.publish("run-stray", _event(2)), 5)
        got = [await sub.get(5.0), await sub.get(5.0)]
    finally:
        await broker.unsubscribe(sub)
    assert [e.seq for e in got if e is not None] == [1, 2]
    assert got[1] is not None and got[1].data == b'{"n":2}'


async def test_subscriber_receives_live_events_in_order(broker: Broker) -> None:
    sub = await broker.subscribe("run-live")
    try:
        for seq in range(1, 51):
            await broker.publish("run-live", _event(seq))
        got = []
        while len(got) < 50:
            event = await sub.get(2.0)
            assert event is not None
            got.append(event.seq)
        assert got == list(range(1, 51))
    finally:
        await broker.unsubscribe(sub)


async def test_wake_reaches_a_waiting_worker(broker: Broker) -> None:
    waiter = asyncio.create_task(broker.wait_wake(5.0))
    await asyncio.sleep(0.05)
    await broker.wake()
    assert await asyncio.wait_for(waiter, 5.0) is False  # a wake-up about a run, not a poll
    assert await broker.wait_wake(0.1) is None


async def test_hundreds_of_idle_workers_leave_redis_usable(broker: Broker) -> None:
    """Idle workers wait in-process, not each on a blocking Redis connection of their own:
    with more of them than the client's connection pool holds, publishing still works."""
    waiters = [asyncio.create_task(broker.wait_wake(30.0)) for _ in range(300)]
    try:
        await asyncio.sleep(0.05)
        await asyncio.wait_for(broker.publish("run-many", _event(1)), 5.0)
        assert [e.seq for e in await broker.replay("run-many", 0)] == [1]
        for _ in range(3):
            await broker.wake()
        woken = 0
        async with asyncio.timeout(5.0):
            while woken < 3:
                done = sum(w.done() for w in waiters)
                woken = done
                await asyncio.sleep(0.01)
        assert sum(w.done() for w in waiters) == 3
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def test_a_busy_process_leaves_sentinels_to_idle_ones() -> None:
    """A process none of whose workers waits takes no sentinel off the shared list."""
    async with _redis_pair() as (busy, idle, _):
        await busy.wake()
        assert await idle.wait_wake(5.0) is False


async def _blocked_clients() -> int:
    client = aioredis.from_url(REDIS_URL)
    try:
        return int((await client.info("clients"))["blocked_clients"])
    finally:
        await client.aclose()


async def test_a_sentinel_nobody_here_wants_any_more_goes_to_another_process() -> None:
    """A process's BLPOP, blocked for an idle worker that was then handed a run created in
    that process, takes a sentinel no worker there waits for: it goes back to the list for
    an idle worker of another process, instead of waiting for a worker here to finish."""
    with redis_prefix() as prefix:
        first = create_broker(REDIS_URL, prefix=prefix, maxlen=100, ttl=60)
        second = create_broker(REDIS_URL, prefix=prefix, maxlen=100, ttl=60)
        await first.start()
        await second.start()
        tasks: list[asyncio.Task] = []
        try:
            before = await _blocked_clients()
            tasks.append(asyncio.create_task(first.wait_wake(30.0)))
            async with asyncio.timeout(5.0):  # first's BLPOP blocks on the list
                while await _blocked_clients() <= before:
                    await asyncio.sleep(0.01)
            assert first.wakeups.reserve() is not None  # its one idle worker gets a local run
            tasks.append(asyncio.create_task(second.wait_wake(30.0)))
            await second.wake()  # first's BLPOP, blocked longest, pops it
            assert await asyncio.wait_for(tasks[-1], 5.0) is False
            assert await first.wait_wake(0.05) is None  # and first kept nothing
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await first.close()
            await second.close()


async def test_control_messages_reach_handlers(broker: Broker) -> None:
    got: asyncio.Queue[dict] = asyncio.Queue()

    async def handler(message: dict) -> None:
        await got.put(message)

    broker.on_control(handler)
    await broker.send_control({"type": "cancel", "run_id": "r1", "action": "interrupt"})
    assert await asyncio.wait_for(got.get(), 5.0) == {
        "type": "cancel",
        "run_id": "r1",
        "action": "interrupt",
    }


async def test_end_marker_and_dropping_the_log(broker: Broker) -> None:
    await broker.publish("run-end", _event(1))
    await broker.publish_end("run-end", 2, "success")
    events = await broker.replay("run-end", 0)
    assert [e.event for e in events] == ["custom", "__end__"]
    await broker.drop_log("run-end")
    assert await broker.replay("run-end", 0) == []


async def test_the_last_logged_event_of_a_long_log(broker: Broker) -> None:
    assert await broker.last_logged("run-last") is None
    for seq in range(1, 301):
        await broker.publish("run-last", _event(seq))
    last = await broker.last_logged("run-last")
    assert last is not None and (last.seq, last.event, last.data) == (300, "custom", b'{"n":300}')
    await broker.publish_end("run-last", 301, "success")
    last = await broker.last_logged("run-last")
    assert last is not None and (last.seq, last.event) == (301, "__end__")


async def test_a_run_of_this_process_is_relayed_without_redis_pubsub() -> None:
    """Listeners in the process executing a run get its events straight from it, its replay
    from memory, and its channel is not subscribed on Redis; Redis still logs every event for
    the other processes. Once the run goes on elsewhere, the listener is moved onto Redis and
    told to resync."""
    with redis_prefix() as prefix:
        here = create_broker(REDIS_URL, prefix=prefix, maxlen=1000, ttl=60)
        await here.start()
        redis = here.client  # type: ignore[attr-defined]
        channel = f"{prefix}run:local-run"
        try:
            here.claim_local("local-run", 0)
            sub = await here.subscribe("local-run")
            assert (await redis.pubsub_numsub(channel))[0][1] == 0
            for seq in (1, 2, 3):
                await here.publish("local-run", _event(seq))
            assert [sub.take().seq for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
            assert sub.take() is None  # no second copy through Redis
            assert [e.seq for e in await here.replay("local-run", 1)] == [2, 3]
            async with asyncio.timeout(5):  # the pipeline is not awaited by the publisher
                while await redis.xlen(f"{prefix}run:local-run:events") < 3:
                    await asyncio.sleep(0.01)

            here.release_local("local-run", ended=False)  # its lease went to another process
            resync = await sub.get(5.0)
            assert resync is not None and resync.event == RESYNC
            assert (await redis.pubsub_numsub(channel))[0][1] == 1
            elsewhere = create_broker(REDIS_URL, prefix=prefix, maxlen=1000, ttl=60)
            await elsewhere.start()
            try:
                await elsewhere.publish("local-run", _event(4))
            finally:
                await elsewhere.close()
            live = await sub.get(5.0)
            assert live is not None and live.seq == 4
            await here.unsubscribe(sub)
        finally:
            await here.close()


async def test_events_reach_logs_and_channels_after_redis_forgot_the_script() -> None:
    """Events queued together go to Redis in calls of the append-and-publish script: each
    reaches its own run's log and channel, an event whose id the log refuses is still
    published, and a Redis that lost its script cache (restart, failover) gets it again."""
    async with _redis_pair() as (publisher, listener, prefix):
        redis = publisher.client  # type: ignore[attr-defined]
        subs = {run: await listener.subscribe(run) for run in ("run-a", "run-b")}
        await redis.script_flush()
        # Published without waiting, one after the other: they share the calls.
        for seq in (1, 2, 3):
            for run in ("run-a", "run-b"):
                await publisher.publish(run, _event(seq))
        for run, sub in subs.items():
            got = [await sub.get(5.0) for _ in range(3)]
            assert [e.seq for e in got if e is not None] == [1, 2, 3], run
        async with asyncio.timeout(5):
            while await redis.xlen(f"{prefix}run:run-b:events") < 3:
                await asyncio.sleep(0.01)
        assert [e.seq for e in await listener.replay("run-a", 0)] == [1, 2, 3]
        assert await redis.ttl(f"{prefix}run:run-a:events") > 0

        # An id the log already has: not logged twice, still relayed.
        await publisher.publish("run-a", Event(2, "custom", b'{"again":true}'))
        again = await subs["run-a"].get(5.0)
        assert again is not None and again.data == b'{"again":true}'
        assert [e.seq for e in await listener.replay("run-a", 0)] == [1, 2, 3]
        for sub in subs.values():
            await listener.unsubscribe(sub)


async def test_events_go_on_after_the_senders_connection_was_dropped() -> None:
    """The sender keeps one Redis connection from batch to batch: when Redis drops it (a
    restart, a proxy's idle timeout), the next batch reconnects and still reaches the log
    and the channel."""
    async with _redis_pair() as (publisher, listener, _):
        redis = publisher.client  # type: ignore[attr-defined]
        sub = await listener.subscribe("run-dropped")
        for seq in (1, 2):
            await publisher.publish("run-dropped", _event(seq))
            assert (await sub.get(5.0)).seq == seq  # type: ignore[union-attr]
        senders = [c["id"] for c in await redis.client_list() if c["cmd"] in ("evalsha", "eval")]
        assert senders, "no connection ran the append script"
        for client_id in senders:
            await redis.client_kill_filter(_id=client_id)
        for seq in (3, 4):
            await publisher.publish("run-dropped", _event(seq))
            assert (await sub.get(5.0)).seq == seq  # type: ignore[union-attr]
        assert [e.seq for e in await listener.replay("run-dropped", 0)] == [1, 2, 3, 4]
        await listener.unsubscribe(sub)


@contextlib.asynccontextmanager
async def _lingering_pair(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, Any]]:
    """Two processes' brokers on one prefix, whose relay batches linger a minute: only an end,
    a waiting publisher or a flush sends them."""
    from app.broker import redis as redis_broker

    monkeypatch.setattr(redis_broker, "_LINGER_SECS", 60.0)
    async with _redis_pair() as (here, elsewhere, _):
        yield here, elsewhere


async def test_events_of_a_run_here_linger_for_company_and_its_end_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run executing here sends its events to Redis in batches gathered over a short
    linger, and its end goes at once with everything queued before it."""
    async with _lingering_pair(monkeypatch) as (here, elsewhere):
        calls: list[int] = []
        send = here._append_and_send

        async def counted(keys: list, args: tuple) -> None:
            calls.append(len(ormsgpack.unpackb(args[2])) // 5)
            await send(keys, args)

        here._append_and_send = counted
        sub = await elsewhere.subscribe("lingering")
        here.claim_local("lingering", 0)
        for seq in range(1, 6):
            await here.publish("lingering", _event(seq))
        await here.publish("lingering", Event(6, "end", b""), final=True)
        got = [await sub.get(5.0) for _ in range(6)]
        assert [e.seq for e in got if e is not None] == [1, 2, 3, 4, 5, 6]
        assert calls == [6]  # one batch, sent when the end came
        await elsewhere.unsubscribe(sub)


async def test_flush_returns_once_the_events_so_far_are_in_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a run's checkpoint saves wait for: lingering events go out at once, and events
    in a batch already on its way are waited for too."""
    async with _lingering_pair(monkeypatch) as (here, reader):
        await here.flush()  # nothing pending: at once
        here.claim_local("flushed", 0)
        for seq in range(1, 4):
            await here.publish("flushed", _event(seq))
        assert await reader.replay("flushed", 0) == []  # still lingering
        await asyncio.wait_for(here.flush(), 5.0)
        assert [e.seq for e in await reader.replay("flushed", 0)] == [1, 2, 3]
        # A batch in flight: the flush waits for its reply.
        await here.publish("flushed", _event(4))
        here._hurry()
        await asyncio.sleep(0)  # the sender takes the batch
        assert here._outbox == []
        await asyncio.wait_for(here.flush(), 5.0)
        assert [e.seq for e in await reader.replay("flushed", 0)] == [1, 2, 3, 4]
