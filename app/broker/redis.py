"""The Redis broker: a wake list, capped per-run streams as replay logs, pub/sub for live relay.

Each process holds one pub/sub connection. Run channels are subscribed on it while a local
listener wants them, and messages fan out to local queues. Every failure degrades to
"no wake-up / no relay": callers fall back to Postgres and nothing is lost.

A run executing in this process is relayed to this process's listeners directly: its events
reach their queues as they are published, its replay is answered from memory, and its channel
is not subscribed on Redis at all. Redis still gets every event (log and channel) for the
other processes, in batches that the run does not wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import orjson
import ormsgpack
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from app.broker.base import RESYNC, Broker, Doorbell, Event, Subscription
from app.broker.redis_url import connect

log = logging.getLogger(__name__)

# Appends a batch of events, of any runs, to their replay logs and publishes each on its run's
# channel: one command per batch instead of two or three per event, which is most of what the
# client spends on Redis. KEYS: the runs' log keys ("<channel>:events"). ARGV: maxlen, ttl,
# and the events as one MessagePack array of five values per event: the index of its key, seq,
# name, data, and whether to (re)set the log's time to live. One argument rather than five
# per event: the client packs it in C instead of encoding each argument in Python (15 → 7 µs
# an event, and Redis 7.8 → 6 µs, measured alone). Redis's MessagePack reads strings, not
# binaries, so seq and data go as strings. A refused XADD (an id not above the log's last)
# leaves only that event out of the log; it is still published.
_APPEND_AND_PUBLISH = r"""
local maxlen, ttl = ARGV[1], ARGV[2]
local batch = cmsgpack.unpack(ARGV[3])
for i = 1, #batch, 5 do
  local key = KEYS[batch[i]]
  local seq, name, data = batch[i + 1], batch[i + 2], batch[i + 3]
  redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, seq .. '-0', 'e', name, 'd', data)
  if batch[i + 4] then
    redis.call('EXPIRE', key, ttl)
  end
  redis.call('PUBLISH', string.sub(key, 1, -8), seq .. '\n' .. name .. '\n' .. data)
end
return 0
"""
_LOG_SUFFIX = ":events"  # the script finds a run's channel by dropping it from the log key

_SUBSCRIBE_CONFIRM_SECS = 2.0
_BLPOP_SECS = 1.0
_EXPIRE_EVERY = 64
# A publisher that can wait waits for Redis only while this many events are queued: a fast
# run is not slowed down to Redis's pace. A graph's own events cannot wait (they are
# published inside the graph's code, as LangGraph would queue them for `astream`).
_OUTBOX_HIGH_WATER = 5_000
# The events of runs executing here wait this long for others before they go to Redis: this
# process's listeners have them already, and the other processes get them this much later in
# batches several times larger (one write, one script call and one reply each). A run's end,
# and any event a publisher waits for, goes at once, with whatever is queued.
_LINGER_SECS = 0.002
_LINGER_MAX_EVENTS = 256


class RedisBroker(Broker):
    kind = "redis"
    shared = True

    def __init__(self, uri: str, *, prefix: str, maxlen: int, ttl: int) -> None:
        super().__init__()
        self._uri = uri
        self._prefix = prefix
        self._maxlen = maxlen
        self._ttl = ttl
        self._redis = connect(uri)
        self._append_and_publish = self._redis.register_script(_APPEND_AND_PUBLISH)
        self._wake_key = f"{prefix}wake"
        self._control_channel = f"{prefix}control".encode()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._wake_listener: asyncio.Task[None] | None = None
        self._subs: dict[str, set[Subscription]] = {}
        # Runs whose channel is subscribed on Redis (some are only listened to locally).
        self._remote: set[str] = set()
        # Runs executing here: what they published since their claim, and its first seq.
        self._local: dict[str, tuple[int, deque[Event]]] = {}
        self._confirms: dict[bytes, asyncio.Future[None]] = {}
        self._healthy = False
        self._closing = False
        self._connected = asyncio.Event()
        self._dispatching: set[asyncio.Task[None]] = set()
        # (run, event, final, future of a publisher waiting for it to be sent, if any)
        self._outbox: list[tuple[str, Event, bool, asyncio.Future[None] | None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._sender_conn: Any = None  # the sender's own Redis connection, while it works
        self._urgent = False  # something queued must not linger
        self._lingering = Doorbell()
        self._in_flight: asyncio.Future[None] | None = None  # done when the batch is sent

    # -- keys -----------------------------------------------------------------------------

    def _log_key(self, run_id: str) -> str:
        return f"{self._prefix}run:{run_id}{_LOG_SUFFIX}"

    def _channel(self, run_id: str) -> bytes:
        return f"{self._prefix}run:{run_id}".encode()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), 2.0))
        except (RedisError, OSError, TimeoutError):
            return False

    @property
    def client(self) -> aioredis.Redis:
        return self._redis

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="runyard-pubsub")
        self._wake_listener = asyncio.create_task(self._listen_wakes(), name="runyard-wakes")
        # Give a healthy Redis a moment so the first requests see the relay up; a down one
        # does not delay start-up beyond this.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 3.0)

    async def close(self) -> None:
        self._closing = True
        self._hurry()
        if self._sender is not None:
            # What is queued still goes out (the runs' last events and ends).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._sender), 5.0)
        for task in (self._reader, self._wake_listener, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for *_, done in self._outbox:
            if done is not None and not done.done():
                done.set_result(None)
        self._outbox = []
        if self._sender_conn is not None:
            with contextlib.suppress(Exception):
                await self._redis.connection_pool.release(self._sender_conn)
            self._sender_conn = None
        await self._close_pubsub()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    async def _read_forever(self) -> None:
        backoff = 0.05
        reconnect = False
        while not self._closing:
            try:
                self._pubsub = self._redis.pubsub()
                channels = [self._control_channel, *(self._channel(r) for r in self._remote)]
                await self._pubsub.subscribe(*channels)
                self._healthy = True
                self._connected.set()
                backoff = 0.05
                if reconnect:
                    log.info("redis pub/sub reconnected")
                    for run_id in self._remote:
                        for sub in self._subs.get(run_id, ()):
                            sub.put(Event(-1, RESYNC, b""))
                reconnect = True
                while True:
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
                if self._healthy:
                    log.warning("redis pub/sub lost: %s", exc)
                self._healthy = False
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel: bytes = message["channel"]
        if kind == "subscribe":
            future = self._confirms.pop(channel, None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind != "message":
            return
        payload: bytes = message["data"]
        if channel == self._control_channel:
            # Keep a reference: the loop holds tasks weakly.
            task = asyncio.create_task(self._dispatch_control(orjson.loads(payload)))
            self._dispatching.add(task)
            task.add_done_callback(self._dispatching.discard)
            return
        run_id = channel[len(self._prefix) + 4 :].decode()
        subs = self._subs.get(run_id)
        if not subs or run_id in self._local:
            return  # a run of this process reached its listeners already
        event = _decode(payload)
        for sub in subs:
            sub.put(event)

    # -- wake-ups -------------------------------------------------------------------------

    async def wake(self) -> None:
        try:
            await self._redis.rpush(self._wake_key, b"1")
        except (RedisError, OSError) as exc:
            self._healthy = False
            # The workers of this process at least hear of it; the others poll.
            self.wakeups.signal()
            log.debug("wake not sent, workers will poll: %s", exc)

    async def _listen_wakes(self) -> None:
        """Take sentinels off the wake list only while a worker here is idle, one per idle
        worker: one blocking connection per process, and a busy process leaves them to others."""
        backoff = 0.05
        while not self._closing:
            await self.wakeups.wait_demand()
            try:
                popped = await self._redis.blpop([self._wake_key], timeout=_BLPOP_SECS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: the pool's polling takes over
                self._healthy = False
                log.debug("wake list unavailable: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if popped is not None and not self.wakeups.signal(keep=False):
                # Every idle worker here was handed a run created here while the BLPOP was
                # blocked: the sentinel's run is for an idle worker of another process now, not
                # for a worker here once its run ends.
                await self._give_back(popped[1])

    async def _give_back(self, sentinel: bytes) -> None:
        try:
            await self._redis.lpush(self._wake_key, sentinel)
        except (RedisError, OSError) as exc:  # the run is found by the next poll instead
            log.debug("sentinel not given back: %s", exc)

    # -- events ---------------------------------------------------------------------------

    def claim_local(self, run_id: str, base_seq: int) -> None:
        if run_id not in self._local:
            self._local[run_id] = (base_seq, deque(maxlen=self._maxlen))

    def release_local(self, run_id: str, *, ended: bool) -> None:
        if self._local.pop(run_id, None) is None or ended or run_id not in self._subs:
            return
        # It goes on in another process: listen on Redis from now on; the listeners replay the
        # log once the channel is confirmed, which closes the gap.
        task = asyncio.create_task(self._go_remote(run_id))
        self._dispatching.add(task)
        task.add_done_callback(self._dispatching.discard)

    async def _go_remote(self, run_id: str) -> None:
        await self._subscribe_remote(run_id)
        for sub in self._subs.get(run_id, ()):
            sub.put(Event(-1, RESYNC, b""))

    async def publish(self, run_id: str, event: Event, *, final: bool = False) -> None:
        """Deliver to this process's listeners, and queue the event for the next batch.

        Events of all runs of this process published within a couple of milliseconds, or
        while a batch is in flight, go out together in the next one: one write and one read
        of Redis per batch instead of per event, in the order they were published, so a
        run's order holds. The publisher of a run executing here waits for Redis only when
        the queue is long (backpressure); any other (the end of a pending run cancelled
        here) until its event is written."""
        local = self._local.get(run_id)
        wait = local is None or len(self._outbox) >= _OUTBOX_HIGH_WATER
        done = asyncio.get_running_loop().create_future() if wait else None
        self._queue(run_id, event, final, local, done)
        if done is not None:
            await asyncio.shield(done)

    def publish_nowait(self, run_id: str, event: Event) -> None:
        self._queue(run_id, event, False, self._local.get(run_id), None)

    def _queue(
        self,
        run_id: str,
        event: Event,
        final: bool,
        local: tuple[int, deque[Event]] | None,
        done: asyncio.Future[None] | None,
    ) -> None:
        if local is not None:
            local[1].append(event)
            for sub in self._subs.get(run_id, ()):
                sub.put(event)
        self._outbox.append((run_id, event, final, done))
        if done is not None or final or len(self._outbox) >= _LINGER_MAX_EVENTS:
            self._hurry()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outbox(), name="runyard-publish")

    async def flush(self) -> None:
        if self._outbox:
            run_id, event, final, done = self._outbox[-1]
            if done is None:
                done = asyncio.get_running_loop().create_future()
                self._outbox[-1] = (run_id, event, final, done)
            self._hurry()
        elif self._in_flight is not None and not self._in_flight.done():
            done = self._in_flight
        else:
            return
        await asyncio.shield(done)

    def _hurry(self) -> None:
        self._urgent = True
        self._lingering.ring()

    async def _send_outbox(self) -> None:
        while self._outbox:
            if not self._urgent:
                await self._lingering.wait(_LINGER_SECS)
            self._urgent = False
            batch, self._outbox = self._outbox, []
            self._in_flight = asyncio.get_running_loop().create_future()
            keys: dict[str, int] = {}
            packed: list[Any] = []
            for run_id, event, final, _ in batch:
                index = keys.setdefault(self._log_key(run_id), len(keys) + 1)
                # The log's time to live, set as it starts, now and then, and at its end: not
                # once per event.
                expire = final or event.seq % _EXPIRE_EVERY == 1
                # Event data is JSON, so UTF-8; "replace" only keeps a stray byte from stopping
                # the sender with the batch's publishers waiting.
                data = event.data.decode(errors="replace")
                packed += (index, str(event.seq), event.event, data, expire)
            args = (self._maxlen, self._ttl, ormsgpack.packb(packed))
            try:
                await self._append_and_send(list(keys), args)
            except (RedisError, OSError) as exc:
                # Once per outage, not once per event: the pub/sub reader logs the recovery.
                if self._healthy:
                    log.warning("events not relayed while Redis is unreachable: %s", exc)
                self._healthy = False
                # Listeners here still hear the rest (a `wait` on the run ends at once).
                for run_id, event, _, _ in batch:
                    if run_id not in self._local:
                        for sub in self._subs.get(run_id, ()):
                            sub.put(event)
            finally:
                for *_, done in batch:
                    if done is not None and not done.done():
                        done.set_result(None)
                self._in_flight.set_result(None)

    async def _append_and_send(self, keys: list[str], args: tuple[Any, ...]) -> None:
        """Run the append-and-publish script for one batch on the sender's own connection,
        held from one batch to the next: through the pool and the script helper each call
        cost 100-130 µs of CPU here, on a held connection 40-55 (a batch per event when
        events trickle). A dropped connection (Redis restarted, a proxy's idle timeout) is
        reconnected and the batch sent once more, as redis-py's own retry would; a
        connection left in doubt otherwise (another error, a cancel mid-reply) is dropped,
        and the next batch takes another."""
        conn = self._sender_conn
        if conn is None:
            conn = self._sender_conn = await self._redis.connection_pool.get_connection()
        try:
            try:
                await self._run_append_script(conn, keys, args)
            except RedisConnectionError:
                await conn.disconnect()
                await self._run_append_script(conn, keys, args)
        except BaseException:
            self._sender_conn = None
            with contextlib.suppress(Exception):
                await conn.disconnect()
            await self._redis.connection_pool.release(conn)
            raise

    async def _run_append_script(self, conn: Any, keys: list[str], args: tuple[Any, ...]) -> None:
        try:
            sha = self._append_and_publish.sha
            await conn.send_command("EVALSHA", sha, len(keys), *keys, *args)
            await conn.read_response()
        except NoScriptError:  # Redis restarted (its script cache is empty): load it
            await conn.send_command("EVAL", _APPEND_AND_PUBLISH, len(keys), *keys, *args)
            await conn.read_response()

    async def replay(self, run_id: str, after_seq: int) -> list[Event]:
        local = self._local.get(run_id)
        if local is not None:
            base, events = local
            # Complete from the start of this claim: memory has all of it Redis would have.
            if after_seq >= base and (not events or events[0].seq == base + 1):
                return [e for e in events if e.seq > after_seq]
        try:
            entries = await self._redis.xrange(self._log_key(run_id), min=f"{after_seq + 1}-0")
        except (RedisError, OSError) as exc:
            self._log_unreadable(run_id, exc)
            return []
        return [_logged(entry) for entry in entries]

    async def last_logged(self, run_id: str) -> Event | None:
        local = self._local.get(run_id)
        if local is not None and local[1]:
            return local[1][-1]
        try:
            entries = await self._redis.xrevrange(self._log_key(run_id), count=1)
        except (RedisError, OSError) as exc:
            self._log_unreadable(run_id, exc)
            return None
        return _logged(entries[0]) if entries else None

    def _log_unreadable(self, run_id: str, exc: BaseException) -> None:
        self._healthy = False
        log.warning("replay of run %s unavailable: %s", run_id, exc)

    async def subscribe(self, run_id: str) -> Subscription:
        sub = Subscription(run_id)
        subs = self._subs.get(run_id)
        if subs:
            subs.add(sub)
            return sub
        self._subs[run_id] = {sub}
        if run_id not in self._local:
            await self._subscribe_remote(run_id)
        return sub

    async def _subscribe_remote(self, run_id: str) -> None:
        """Subscribe the run's channel on Redis; returns once confirmed (or given up)."""
        if run_id in self._remote:
            return
        self._remote.add(run_id)
        channel = self._channel(run_id)
        pubsub = self._pubsub
        if pubsub is None or not self._healthy:
            return  # the reader subscribes it on reconnect
        future = asyncio.get_running_loop().create_future()
        self._confirms[channel] = future
        try:
            await pubsub.subscribe(channel)
            await asyncio.wait_for(future, _SUBSCRIBE_CONFIRM_SECS)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("subscribe to run %s not confirmed: %s", run_id, exc)
            self._confirms.pop(channel, None)

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.run_id)
        if subs is None:
            return
        subs.discard(sub)
        if subs:
            return
        del self._subs[sub.run_id]
        if sub.run_id not in self._remote:
            return
        self._remote.discard(sub.run_id)
        if self._pubsub is not None and self._healthy:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(self._channel(sub.run_id))

    async def send_control(self, message: dict[str, Any]) -> None:
        try:
            await self._redis.publish(self._control_channel, orjson.dumps(message))
        except (RedisError, OSError) as exc:
            self._healthy = False
            log.warning("control message not sent (Postgres fallback applies): %s", exc)

    async def drop_log(self, run_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._log_key(run_id))


def _logged(entry: tuple[bytes, dict[bytes, bytes]]) -> Event:
    entry_id, fields = entry
    return Event(int(entry_id.split(b"-", 1)[0]), fields[b"e"].decode(), fields[b"d"])


def _decode(payload: bytes) -> Event:
    """A message of a run's channel: "<seq>\\n<name>\\n<data>", as the append script sends it."""
    seq, name, data = payload.split(b"\n", 2)
    return Event(int(seq), name.decode(), data)
