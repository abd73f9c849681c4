"""Where a stream's first event goes, step by step inside the server:

    python -m bench.first_event [--runs 1000] [--warmup 300]

Starts the production shape with the probes of `bench/probes` (timestamps taken as a few of
the server's functions are entered and left), sends sequential stateless `runs.stream` calls
of `emit` (10 events at once, the `stream` scenario's load) on one connection, so one Gunicorn
worker serves them all, and prints, for each step, the median and 90th percentile of its time
since the request reached the server's first middleware, beside the client's own time to the
first custom event. The steps' medians in order, one after the other, say where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import uvloop

from bench.graphs import emit_input
from bench.measure import client
from bench.scenarios.base import token
from bench.servers import BENCH_DIR, StackSpec, open_stack

EVENTS = 10
MODES = ["custom", "values"]
# The probes' labels (bench/probes/sitecustomize.py), what each marks.
STEPS = {
    "request": "the request reaches the server's first middleware",
    "route": "the route creates the run (FastAPI has read and validated the request)",
    "insert": "the run, built, goes to its insert",
    "inserted": "the insert has committed",
    "metadata": "the response writes its metadata frame",
    "execute": "the worker starts the run",
    "graph": "the run's graph is called (config, checkpointer, graph copy)",
    "checkpointer": "LangGraph first reads the checkpointer",
    "event": "the graph's first custom event",
    "frame": "its SSE frame is written",
}
WRITE_WAIT_SECS = 1.5  # the probes rewrite their files every half second


async def _streams(url: str, runs: int, pause: float = 0.0) -> list[float]:
    """Sequential streams, `pause` seconds apart; the client's time to each one's first
    custom event, in ms."""
    sdk = client(url)
    firsts: list[float] = []
    try:
        for _ in range(runs):
            started, first = time.perf_counter(), None
            async for part in sdk.runs.stream(
                None, "emit", input=emit_input(token(), EVENTS), stream_mode=MODES
            ):
                if part.event == "custom" and first is None:
                    first = (time.perf_counter() - started) * 1000
            if first is None:
                raise RuntimeError("a stream ended without a custom event")
            firsts.append(first)
            if pause:
                await asyncio.sleep(pause)
    finally:
        await sdk.aclose()
    return firsts


def read_marks(directory: Path, since: float = 0.0) -> list[dict[str, float]]:
    """Each probed request that reached the server at `since` or later (perf_counter, one
    clock for every process of the machine), its steps as ms since its `request` mark (the
    first of each label after it), from every process's file."""
    requests: list[dict[str, float]] = []
    for path in sorted(directory.glob("marks-*.txt")):
        current: dict[str, float] | None = None
        for line in path.read_text().splitlines():
            label, _, stamp = line.partition(" ")
            at = float(stamp)
            if label == "request":
                current = {"request": at} if at >= since else None
                if current is not None:
                    requests.append(current)
            elif current is not None and label not in current:
                current[label] = at
    return [
        {label: (at - r["request"]) * 1000 for label, at in r.items()}
        for r in requests
        if "frame" in r  # a request the probes saw to its first event
    ]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report(requests: list[dict[str, float]], client_ms: list[float]) -> str:
    rows = []
    for label, meaning in STEPS.items():
        times = [r[label] for r in requests if label in r]
        if times:
            rows.append((statistics.median(times), _p(times, 0.9), label, meaning))
    rows.sort()
    lines = [f"{len(requests)} streams; ms since the request reached the server", ""]
    lines.append(f"{'p50':>7} {'step':>7} {'p90':>7}  label         what")
    previous = 0.0
    for p50, p90, label, meaning in rows:
        lines.append(f"{p50:7.3f} {p50 - previous:7.3f} {p90:7.3f}  {label:<13} {meaning}")
        previous = p50
    lines.append("")
    lines.append(
        f"client, call to first custom event: p50 {statistics.median(client_ms):.3f} ms, "
        f"p90 {_p(client_ms, 0.9):.3f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        metavar="MS",
        help="between streams: the previous run's last work (its stream's teardown, its events' "
        "Redis batch) out of the way of the next request; back to back by default, as the "
        "stream scenario sends them",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="runyard-probes-") as marks:
        probes = str(BENCH_DIR / "probes")
        spec = StackSpec(env={"PYTHONPATH": probes, "RUNYARD_BENCH_PROBES": marks})
        with open_stack("production", spec) as stack:
            uvloop.run(_streams(stack.url, args.warmup))
            since = time.perf_counter()
            client_ms = uvloop.run(_streams(stack.url, args.runs, args.pause / 1000))
            time.sleep(WRITE_WAIT_SECS)
            requests = read_marks(Path(marks), since)
        if not requests:
            raise SystemExit("the probes saw no stream: were they on the server's PYTHONPATH?")
        print(report(requests, client_ms))


if __name__ == "__main__":
    main()
