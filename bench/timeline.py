"""Where a burst of concurrent streams spends its time, stream by stream.

    python -m bench.timeline [--streams 100] [--bursts 3] [--shape production|embedded|floor]

Starts the stack the `streams_100` scenario uses, then sends `--bursts` bursts of N
concurrent `runs.stream` calls of `emit` (50 events, 20 ms apart) and prints, per burst, the
median and the latest client-side time of the `metadata` event, the first and last custom
events and the stream's end (from the burst's start), the gaps between custom events, and the
server's claim latencies (`runyard_run_claim_latency_seconds`, cumulative over the bursts)
with the number of runs handed to an idle worker of the creating process. A run that was not
handed over waited for a sentinel and a claim: its claim latency says how long.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field

import httpx
import uvloop
from langgraph_sdk.client import LangGraphClient
from prometheus_client.parser import text_string_to_metric_families

from bench.graphs import emit_input
from bench.measure import client
from bench.scenarios.base import token
from bench.scenarios.streams import (
    LONG_RUN_DELAY,
    LONG_RUN_EVENTS,
    STREAM_MODES,
    STREAMS_PER_CLIENT,
    streams_spec,
)
from bench.servers import FLOOR, open_stack


@dataclass
class StreamTimes:
    metadata: float = 0.0
    customs: list[float] = field(default_factory=list)
    values: float = 0.0  # the last `values` event: the graph has finished
    end: float = 0.0


async def _one(sdk: LangGraphClient, start: float) -> StreamTimes:
    times = StreamTimes()
    value = token()
    async for part in sdk.runs.stream(
        None,
        "emit",
        input=emit_input(value, LONG_RUN_EVENTS, LONG_RUN_DELAY),
        stream_mode=STREAM_MODES,
    ):
        now = time.perf_counter() - start
        if part.event == "metadata":
            times.metadata = now
        elif part.event == "custom":
            times.customs.append(now)
        elif part.event == "values":
            times.values = now
    times.end = time.perf_counter() - start
    return times


def _spread(values: list[float]) -> str:
    return f"p50 {statistics.median(values):7.1f}  max {max(values):7.1f}"


async def _burst(url: str, streams: int) -> None:
    sdks = [client(url) for _ in range(-(-streams // STREAMS_PER_CLIENT))]
    try:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(_one(sdks[i // STREAMS_PER_CLIENT], start) for i in range(streams))
        )
    finally:
        for sdk in sdks:
            await sdk.aclose()
    ms = 1000.0
    gaps = [(b - a) * ms for r in results for a, b in zip(r.customs, r.customs[1:], strict=False)]
    rows = {
        "metadata": [r.metadata * ms for r in results],
        "first custom": [r.customs[0] * ms for r in results if r.customs],
        "last custom": [r.customs[-1] * ms for r in results if r.customs],
        "final values": [r.values * ms for r in results],
        "end": [r.end * ms for r in results],
        "gap between customs": gaps,
    }
    for name, values in rows.items():
        print(f"  {name:<20} {_spread(values)} ms")


def _claims(url: str) -> None:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    buckets: list[tuple[str, int]] = []
    handed = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "runyard_run_claim_latency_seconds_bucket":
                buckets.append((sample.labels["le"], int(sample.value)))
            elif sample.name == "runyard_runs_handed_over_total":
                handed = int(sample.value)
    shown, previous = [], 0
    for bound, count in buckets:
        if count > previous:
            shown.append(f"≤{bound}s: {count - previous}")
        previous = count
    print(f"  claims so far: {', '.join(shown)}; handed over: {handed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--shape", choices=("production", "embedded", FLOOR), default="production")
    args = parser.parse_args()
    with open_stack(args.shape, streams_spec(args.shape, args.streams)) as stack:
        for burst in range(1, args.bursts + 1):
            print(f"burst {burst}: {args.streams} streams")
            uvloop.run(_burst(stack.url, args.streams))
            if args.shape != FLOOR:  # the floor has no metrics
                _claims(stack.url)


if __name__ == "__main__":
    main()
