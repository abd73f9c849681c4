"""Streaming: latency of one streamed run at a time, and many clients streaming at once."""

from __future__ import annotations

import asyncio
import math
import time

from langgraph_sdk.client import LangGraphClient

from app.settings import Settings
from app.store.longterm import STORE_POOL_SIZE
from bench.graphs import emit_input, emit_output
from bench.measure import (
    CpuMeter,
    Measurement,
    MemorySampler,
    StreamTally,
    client,
    latency_figures,
)
from bench.scenarios.base import Context, Scenario, Target, token
from bench.servers import PRODUCTION_WORKERS, StackSpec

STREAM_MODES = ["custom", "values"]
SHORT_RUN_EVENTS = 10
LONG_RUN_EVENTS, LONG_RUN_DELAY = 50, 0.02  # 50 events over one second
STREAMS_PER_CLIENT = 50  # well under httpx's 100 connections per client
MB = 1024 * 1024


async def stream_one(
    sdk: LangGraphClient, events: int, delay: float, m: Measurement
) -> tuple[StreamTally, float]:
    """Stream one stateless run of `emit` and check it; returns the tally and the time the
    stream ended."""
    value = token()
    tally = StreamTally(value, events)
    try:
        async for part in sdk.runs.stream(
            None, "emit", input=emit_input(value, events, delay), stream_mode=STREAM_MODES
        ):
            tally.feed(part.event, part.data, part.id)
    except Exception as exc:
        m.fail(f"runs.stream raised {type(exc).__name__}: {exc}")
    ended = time.perf_counter()
    tally.verify(m, output=emit_output(value, events, delay))
    return tally, ended


async def warm_stream(ctx: Context, m: Measurement) -> None:
    sdk = client(ctx.stack.url)
    try:
        for _ in range(5):
            await stream_one(sdk, SHORT_RUN_EVENTS, 0.0, m)
    finally:
        await sdk.aclose()


async def measure_stream(ctx: Context) -> Measurement:
    total = 30 if ctx.quick else 200
    m = Measurement(samples={"runs": total, "events_per_run": SHORT_RUN_EVENTS})
    sdk = client(ctx.stack.url)
    first: list[float] = []
    end: list[float] = []
    try:
        for _ in range(total):
            started = time.perf_counter()
            tally, ended = await stream_one(sdk, SHORT_RUN_EVENTS, 0.0, m)
            if tally.first_at is not None:
                first.append(tally.first_at - started)
            end.append(ended - started)
    finally:
        await sdk.aclose()
    m.figures = {**latency_figures("first_event", first), **latency_figures("end", end)}
    return m


def streams_spec(shape: str, streams: int) -> StackSpec:
    """A stack with a worker task for every stream's run at once."""
    if shape != "production":  # one process
        return StackSpec(jobs_per_worker=streams)
    per_worker = math.ceil(streams / PRODUCTION_WORKERS)
    # Room for the server's pools at this N_JOBS_PER_WORKER (capped by
    # LANGGRAPH_POSTGRES_POOL_MAX_SIZE), next to the bench's own connections, which the
    # machine's shared Postgres (100 connections, shared) may not have.
    server = Settings(N_JOBS_PER_WORKER=per_worker)
    per_process = server.tables_pool_size + server.checkpointer_pool_size + STORE_POOL_SIZE
    return StackSpec(
        jobs_per_worker=per_worker,
        private_postgres=per_process * PRODUCTION_WORKERS + 100,
    )


def concurrent_streams(clients: int) -> Scenario:
    """`clients` SDK clients at once, each streaming its own one-second, 50-event run."""

    def size(quick: bool) -> int:
        return clients if not quick or clients <= 100 else clients // 4

    def stack(shape: str, quick: bool) -> StackSpec:
        return streams_spec(shape, size(quick))

    async def measure(ctx: Context) -> Measurement:
        n = size(ctx.quick)
        m = Measurement(samples={"streams": n, "events_per_run": LONG_RUN_EVENTS, "run_seconds": 1})
        sdks = [client(ctx.stack.url) for _ in range(math.ceil(n / STREAMS_PER_CLIENT))]
        server = ctx.stack.server
        idle_rss = server.rss_bytes()
        try:
            with MemorySampler(server) as memory, CpuMeter(server) as cpu:
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(
                        stream_one(sdks[i // STREAMS_PER_CLIENT], LONG_RUN_EVENTS, 0.02, m)
                        for i in range(n)
                    )
                )
                wall = time.perf_counter() - started
        finally:
            await asyncio.gather(*(sdk.aclose() for sdk in sdks))
        lost = sum(tally.lost for tally, _ in results)
        m.figures = {
            "wall_s": round(wall, 3),
            "events_lost": lost,
            "events_received": sum(len(tally.seen) for tally, _ in results),
            **latency_figures("stream", [ended - started for _, ended in results]),
            "server_rss_idle_mb": round(idle_rss / MB, 1),
            "server_rss_peak_mb": round(memory.peak / MB, 1),
            "server_cpu_s": round(cpu.server_seconds, 2),
            "client_cpu_s": round(cpu.client_seconds, 2),
            **cpu.machine_figures(),
        }
        return m

    wall_goal = {100: 1.3, 1000: 3.0}[clients]
    return Scenario(
        name=f"streams_{clients}",
        title=f"{clients:,} concurrent streaming clients, 1-s runs of 50 events",
        measure=measure,
        warmup=warm_stream,
        stack=stack,
        targets=(
            Target("wall_s", "<=", wall_goal, full_size_only=clients > 100),
            Target("events_lost", "<=", 0),
        ),
        units={"wall_s": "s", "events_lost": "events", "events_received": "events"},
        how=f"{clients:,} SDK `runs.stream` calls started together (quick size: "
        f"{size(True)}), each on its own stateless run of `emit` (50 custom events, 20 ms "
        "apart). Every event checked: run token, sequence 1..50 without gap, duplicate or "
        "reordering, rising SSE ids, and the final values. Wall time is first request to "
        "last stream end. RSS is summed over the server's processes (psutil), sampled "
        "every 100 ms. N_JOBS_PER_WORKER is set so the stack can run all runs at once.",
    )


STREAM = Scenario(
    name="stream",
    title="sequential runs.stream of a 10-event run",
    measure=measure_stream,
    warmup=warm_stream,
    targets=(Target("first_event_p50_ms", "<=", 5), Target("end_p50_ms", "<=", 15)),
    how="One stateless `runs.stream` at a time (stream_mode custom+values) of `emit` with 10 "
    "events and no sleep. Time to first event: call to the first custom event; time to end: "
    "call to the end of the SSE stream. Events and final values checked.",
)

STREAMS_100 = concurrent_streams(100)
STREAMS_1000 = concurrent_streams(1000)
