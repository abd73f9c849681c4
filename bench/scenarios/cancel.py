"""Cancel latency across processes: the run executes in the Gunicorn workers, the cancel is
sent to a second `runyard serve` that executes nothing (N_JOBS_PER_WORKER=0)."""

from __future__ import annotations

import asyncio
import time

from langgraph_sdk.client import LangGraphClient

from bench.graphs import emit_input
from bench.measure import Measurement, StreamTally, client, latency_figures
from bench.scenarios.base import Context, Scenario, Target, token
from bench.servers import StackSpec

ENDLESS = 100_000  # events, 10 ms apart: the run only ends when cancelled
SAMPLE_TIMEOUT_SECS = 30


async def measure_cancel(ctx: Context) -> Measurement:
    total = 10 if ctx.quick else 50
    assert ctx.stack.api is not None, "the cancel scenario needs the API-only process"
    m = Measurement(samples={"cancels": total})
    executor, api = client(ctx.stack.url), client(ctx.stack.api.url)
    to_end: list[float] = []
    answered: list[float] = []
    try:
        for _ in range(total):
            sample = await cancel_once(executor, api, m)
            if sample is not None:
                answered.append(sample[0])
                to_end.append(sample[1])
    finally:
        await asyncio.gather(executor.aclose(), api.aclose())
    m.figures = {
        **latency_figures("cancel_to_end", to_end),
        **latency_figures("cancel_call", answered),
    }
    return m


async def cancel_once(
    executor: LangGraphClient, api: LangGraphClient, m: Measurement
) -> tuple[float, float] | None:
    """One run: stream it from the executing server until its first event, cancel it on the
    other process, and time until its stream ends. Returns (cancel answered, stream ended)
    in seconds after the cancel call, or None when the sample failed."""
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT_SECS):
            return await _cancel_once(executor, api, m)
    except TimeoutError:
        m.fail(f"a cancelled run was still streaming {SAMPLE_TIMEOUT_SECS} s after its cancel")
    except Exception as exc:
        m.fail(f"cancel sample raised {type(exc).__name__}: {exc}")
    return None


async def _cancel_once(
    executor: LangGraphClient, api: LangGraphClient, m: Measurement
) -> tuple[float, float] | None:
    value = token()
    thread = await executor.threads.create()
    thread_id = thread["thread_id"]
    run = await executor.runs.create(
        thread_id, "emit", input=emit_input(value, ENDLESS, 0.01), stream_mode="custom"
    )
    tally = StreamTally(value, ENDLESS)
    parts = aiter(executor.runs.join_stream(thread_id, run["run_id"]))
    try:
        async for part in parts:  # live: the run is executing and this stream follows it
            if tally.feed(part.event, part.data, part.id):
                break
        started = time.perf_counter()
        await api.runs.cancel(thread_id, run["run_id"])
        answered = time.perf_counter() - started
        async for part in parts:
            tally.feed(part.event, part.data, part.id)
        ended = time.perf_counter() - started
    finally:
        await parts.aclose()  # type: ignore[attr-defined]
    tally.verify(m, complete=False)
    status = (await executor.runs.get(thread_id, run["run_id"]))["status"]
    if status != "interrupted":
        m.fail(f"cancelled run {run['run_id']} ended {status!r}, not 'interrupted'")
        return None
    return answered, ended


async def warm_cancel(ctx: Context, m: Measurement) -> None:
    assert ctx.stack.api is not None
    executor, api = client(ctx.stack.url), client(ctx.stack.api.url)
    try:
        for _ in range(3):
            await cancel_once(executor, api, m)
    finally:
        await asyncio.gather(executor.aclose(), api.aclose())


CANCEL = Scenario(
    name="cancel",
    title="cancel latency, cancel served by another process",
    measure=measure_cancel,
    warmup=warm_cancel,
    shapes=("production",),
    stack=lambda shape, quick: StackSpec(api_process=True),
    targets=(Target("cancel_to_end_p50_ms", "<=", 10),),
    how="A run of `emit` (endless: an event every 10 ms) is created on a thread and followed "
    "with `runs.join_stream` on the 2-worker server; after its first event, `runs.cancel` "
    "is sent to a second `runyard serve --workers 1` with N_JOBS_PER_WORKER=0, which "
    "executes nothing. Measured: cancel call to the end of the joined SSE stream (the "
    "stream ends after the run is finalized in Postgres); then `runs.get` must say "
    "`interrupted`, and the events before the cancel must be complete and in order.",
)
