"""Throughput: `runs.wait` on stateless runs, background runs (`create` + `join`), and the
same `runs.wait` load with Redis stopped (workers and waiters fall back to Postgres)."""

from __future__ import annotations

import asyncio
import time

from bench.graphs import one_output
from bench.measure import (
    CpuMeter,
    Measurement,
    client,
    latency_figures,
    run_concurrently,
    stalled,
)
from bench.scenarios.base import Context, Scenario, Target, token
from bench.servers import StackSpec

CONCURRENCY = 16
# After Redis comes back: the pub/sub reader reconnects with a backoff of at most 2 s.
REDIS_RECONNECT_SECS = 2.5


async def wait_batch(url: str, total: int, m: Measurement) -> tuple[float, list[float]]:
    """`total` stateless `runs.wait` of the one-node graph, CONCURRENCY at a time, each output
    checked. Returns the wall time and the latencies of the runs that succeeded."""
    sdk = client(url)
    latencies: list[float] = []

    async def one(_: int) -> None:
        value = token()
        started = time.perf_counter()
        try:
            out = await sdk.runs.wait(None, "one", input={"token": value})
        except Exception as exc:
            m.fail(f"runs.wait raised {type(exc).__name__}: {exc}")
            return
        latencies.append(time.perf_counter() - started)
        if out != one_output(value):
            m.fail(f"runs.wait answered {str(out)[:200]}")

    try:
        wall = await run_concurrently(total, CONCURRENCY, one)
    finally:
        await sdk.aclose()
    return wall, latencies


async def warm_wait(ctx: Context, m: Measurement) -> None:
    await wait_batch(ctx.stack.url, 2 * CONCURRENCY, m)


async def measure_wait(ctx: Context) -> Measurement:
    total = 200 if ctx.quick else 1000
    m = Measurement(samples={"runs": total, "concurrency": CONCURRENCY})
    with CpuMeter(ctx.stack.server) as cpu:
        wall, latencies = await wait_batch(ctx.stack.url, total, m)
    m.figures = {
        "runs_per_s": round(len(latencies) / wall, 1),
        **latency_figures("latency", latencies),
        "runs_over_10s": stalled(latencies),
        "server_cpu_ms_per_run": round(cpu.server_seconds / total * 1000, 1),
        "client_cpu_ms_per_run": round(cpu.client_seconds / total * 1000, 1),
        **cpu.machine_figures(total, "ms"),
    }
    return m


async def measure_background(ctx: Context) -> Measurement:
    total = 200 if ctx.quick else 1000
    m = Measurement(samples={"runs": total, "concurrency": CONCURRENCY})
    sdk = client(ctx.stack.url)
    latencies: list[float] = []

    async def one(_: int) -> None:
        value = token()
        started = time.perf_counter()
        try:
            run = await sdk.runs.create(None, "one", input={"token": value}, on_completion="keep")
            out = await sdk.runs.join(run["thread_id"], run["run_id"])
        except Exception as exc:
            m.fail(f"runs.create/join raised {type(exc).__name__}: {exc}")
            return
        latencies.append(time.perf_counter() - started)
        if out != one_output(value):
            m.fail(f"runs.join answered {str(out)[:200]}")

    try:
        with CpuMeter(ctx.stack.server) as cpu:
            wall = await run_concurrently(total, CONCURRENCY, one)
    finally:
        await sdk.aclose()
    m.figures = {
        "completed_runs_per_s": round(len(latencies) / wall, 1),
        **latency_figures("create_to_join", latencies),
        "runs_over_10s": stalled(latencies),
        "server_cpu_ms_per_run": round(cpu.server_seconds / total * 1000, 1),
        "client_cpu_ms_per_run": round(cpu.client_seconds / total * 1000, 1),
        **cpu.machine_figures(total, "ms"),
    }
    return m


async def measure_fallback(ctx: Context) -> Measurement:
    """Redis up, then the same load with the stack's private Redis stopped; Redis is started
    again at the end so the next repetition starts from the same state."""
    up_total, down_total = (200, 48) if ctx.quick else (500, 160)
    redis = ctx.stack.redis
    assert redis is not None, "the fallback scenario needs the stack's private Redis"
    url = ctx.stack.url
    m = Measurement(
        samples={
            "runs_redis_up": up_total,
            "runs_redis_down": down_total,
            "concurrency": CONCURRENCY,
        }
    )
    up_wall, up_latencies = await wait_batch(url, up_total, m)
    redis.stop()
    try:
        await wait_batch(url, CONCURRENCY, m)  # until every worker has noticed
        with CpuMeter(ctx.stack.server) as cpu:
            down_wall, down_latencies = await wait_batch(url, down_total, m)
    finally:
        redis.start()
        await asyncio.sleep(REDIS_RECONNECT_SECS)
        await wait_batch(url, CONCURRENCY, m)
    up_rate = len(up_latencies) / up_wall
    down_rate = len(down_latencies) / down_wall
    m.figures = {
        "redis_up_runs_per_s": round(up_rate, 1),
        "redis_down_runs_per_s": round(down_rate, 1),
        "down_to_up_ratio": round(down_rate / up_rate, 3) if up_rate else 0.0,
        "redis_up_runs_over_10s": stalled(up_latencies),
        **latency_figures("redis_down_latency", down_latencies),
        "server_cpu_ms_per_run_redis_down": round(cpu.server_seconds / down_total * 1000, 1),
    }
    return m


WAIT = Scenario(
    name="wait",
    title="runs.wait throughput, stateless, concurrency 16",
    measure=measure_wait,
    warmup=warm_wait,
    targets=(Target("runs_per_s", ">=", 250),),
    units={"runs_per_s": "runs/s"},
    how="Stateless `runs.wait` of the one-node graph from 16 concurrent SDK callers; every "
    "output compared with what the graph must return. Latency is per call, runs/s is "
    "successful calls over wall time; server CPU is summed over the server's processes.",
)

BACKGROUND = Scenario(
    name="background",
    title="background runs: runs.create + runs.join, concurrency 16",
    measure=measure_background,
    warmup=warm_wait,
    targets=(Target("completed_runs_per_s", ">=", 200),),
    units={"completed_runs_per_s": "runs/s"},
    how="16 concurrent SDK callers each `runs.create` a stateless run (on_completion=keep) "
    "then `runs.join` it; the joined output is checked. Completed runs over wall time.",
)

FALLBACK = Scenario(
    name="fallback",
    title="runs.wait throughput with Redis stopped (Postgres polling)",
    measure=measure_fallback,
    warmup=warm_wait,
    shapes=("production",),
    stack=lambda shape, quick: StackSpec(private_redis=True),
    targets=(Target("down_to_up_ratio", ">=", round(1 / 3, 3)),),
    units={"redis_up_runs_per_s": "runs/s", "redis_down_runs_per_s": "runs/s"},
    how="The `wait` load against a stack on a private redis-server: first with Redis up, "
    "then with it stopped (after 16 unmeasured runs so every worker has noticed). The ratio "
    "is Redis-down over Redis-up throughput on the same stack.",
)
