"""This checkout against another, interleaved: `python -m bench.compare --base DIR`.

On a machine whose speed drifts by a factor of two from one minute to the next, two figures
measured minutes apart say little about a change worth a few percent. This starts both servers
at once, in the production shape (`runyard serve --workers 2`, each on a scratch database and
Redis prefix of its own) or with `--shape embedded` (`runyard dev`, each on a data directory
of its own), DIR's code through PYTHONPATH (a worktree of another commit: `git
worktree add /tmp/base HEAD~1`), and sends them short batches of the same load in turn, ABBA
order, so that both see the same machine. `--base-bin` runs the base side with another
virtualenv's `runyard` (another Python, or other library versions), on this checkout's code
unless `--base` is given too. Each batch's server CPU per run and throughput are
paired with the other server's batches of the same round; the report is the median of each
and of the per-round ratios (this over base: below 1 means less CPU). The steadiest figure is
the server's CPU over the client's for the same batch: the client's work is the same on both
sides, so it measures the machine's speed at that moment. `others` is the rest of the
machine's busy time in the batch, per run: Postgres and Redis above all, where a change on the
database's side shows.

Loads (one-node graph, every output checked): `wait` (stateless `runs.wait`), `background`
(`runs.create` + `runs.join`, thread kept), `stream` (stateless `runs.stream`, 10 events),
`trickle` (the same with the events 5 ms apart, so that each goes out on its own, as in the
burst scenarios), `thread` (a new thread, then two `runs.wait` on it), `large` (stateless
`runs.wait` of a graph whose input and final state hold 100 KB), each 16 at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.graphs import carry_input, carry_output, emit_input, emit_output, one_output
from bench.measure import CpuMeter, Measurement, StreamTally, client, run_concurrently
from bench.scenarios.base import token
from bench.servers import BIN, PRODUCTION_WORKERS, RunyardProcess
from bench.services import REDIS_URL, redis_prefix, scratch_database

CONCURRENCY = 16
EVENTS = 10
TRICKLE_DELAY = 0.005
LARGE_BYTES = 100_000  # the `large` load's input and final state

Load = Callable[[object, Measurement], Awaitable[None]]


async def _wait(sdk: object, m: Measurement) -> None:
    value = token()
    out = await sdk.runs.wait(None, "one", input={"token": value})  # type: ignore[attr-defined]
    if out != one_output(value):
        m.fail(f"runs.wait answered {str(out)[:200]}")


async def _background(sdk: object, m: Measurement) -> None:
    value = token()
    runs = sdk.runs  # type: ignore[attr-defined]
    run = await runs.create(None, "one", input={"token": value}, on_completion="keep")
    out = await runs.join(run["thread_id"], run["run_id"])
    if out != one_output(value):
        m.fail(f"runs.join answered {str(out)[:200]}")


async def _stream(sdk: object, m: Measurement, delay: float = 0.0) -> None:
    value = token()
    tally = StreamTally(value, EVENTS)
    async for part in sdk.runs.stream(  # type: ignore[attr-defined]
        None, "emit", input=emit_input(value, EVENTS, delay), stream_mode=["custom", "values"]
    ):
        tally.feed(part.event, part.data, part.id)
    tally.verify(m, output=emit_output(value, EVENTS, delay))


async def _trickle(sdk: object, m: Measurement) -> None:
    await _stream(sdk, m, TRICKLE_DELAY)


async def _thread(sdk: object, m: Measurement) -> None:
    value = token()
    runs, threads = sdk.runs, sdk.threads  # type: ignore[attr-defined]
    thread = await threads.create()
    for _ in range(2):  # the second run finds the thread's checkpoint
        out = await runs.wait(thread["thread_id"], "one", input={"token": value})
        if out != one_output(value):
            m.fail(f"runs.wait on a thread answered {str(out)[:200]}")


async def _large(sdk: object, m: Measurement) -> None:
    value = token()
    out = await sdk.runs.wait(None, "carry", input=carry_input(value, LARGE_BYTES))  # type: ignore[attr-defined]
    if out != carry_output(value, LARGE_BYTES):
        m.fail(f"runs.wait of a large state answered {str(out)[:200]}")


LOADS: dict[str, Load] = {
    "wait": _wait,
    "background": _background,
    "stream": _stream,
    "trickle": _trickle,
    "thread": _thread,
    "large": _large,
}


@dataclass
class Side:
    name: str
    server: RunyardProcess
    cpu_ms: list[float] = field(default_factory=list)
    per_s: list[float] = field(default_factory=list)
    # Server CPU over the client's for the same batch: the client's code is the same on both
    # sides, so this cancels most of the machine's drift between two batches.
    per_client: list[float] = field(default_factory=list)
    # The rest of the machine's busy time in the batch, per run: Postgres and Redis above all.
    others_ms: list[float] = field(default_factory=list)


async def batch(side: Side, load: Load, runs: int, m: Measurement) -> None:
    sdk = client(side.server.url)

    async def one(_: int) -> None:
        try:
            await load(sdk, m)
        except Exception as exc:
            m.fail(f"{side.name}: {type(exc).__name__}: {exc}")

    try:
        with CpuMeter(side.server) as cpu:
            started = time.perf_counter()
            await run_concurrently(runs, CONCURRENCY, one)
            wall = time.perf_counter() - started
    finally:
        await sdk.aclose()
    side.cpu_ms.append(cpu.server_seconds / runs * 1000)
    side.per_s.append(runs / wall)
    side.per_client.append(cpu.server_seconds / cpu.client_seconds)
    side.others_ms.append(cpu.others_seconds / runs * 1000)


async def compare(sides: tuple[Side, Side], load: Load, rounds: int, runs: int) -> Measurement:
    m = Measurement()
    for side in sides:  # warm-up, not counted
        await batch(side, load, 2 * CONCURRENCY, m)
        side.cpu_ms.clear()
        side.per_s.clear()
        side.per_client.clear()
        side.others_ms.clear()
    for i in range(rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            await batch(side, load, runs, m)
    return m


def _median(values: list[float], width: int, digits: int) -> str:
    return f"{statistics.median(values):{width}.{digits}f}" if values else f"{'–':>{width}}"


def report(base: Side, this: Side) -> None:
    def ratios(a: list[float], b: list[float]) -> list[float]:
        return [y / x for x, y in zip(a, b, strict=True) if x]

    cpu_ratios = ratios(base.cpu_ms, this.cpu_ms)
    rate_ratios = ratios(base.per_s, this.per_s)
    relative = ratios(base.per_client, this.per_client)
    others = ratios(base.others_ms, this.others_ms)
    print(
        f"{'':12}{'server CPU ms/run':>20}{'runs/s':>10}{'server/client CPU':>20}"
        f"{'others CPU ms/run':>20}"
    )
    for side in (base, this):
        cpu = statistics.median(side.cpu_ms)
        rate = statistics.median(side.per_s)
        print(
            f"{side.name:12}{cpu:20.2f}{rate:10.1f}{statistics.median(side.per_client):20.3f}"
            f"{statistics.median(side.others_ms):20.2f}"
        )
    # The embedded shape has next to no `others` (no Postgres, no Redis): a batch may show
    # none at all, and a ratio of it none.
    print(
        f"{'this/base':12}{_median(cpu_ratios, 20, 3)}{_median(rate_ratios, 10, 3)}"
        f"{_median(relative, 20, 3)}{_median(others, 20, 3)}"
    )
    for name, values in (
        ("server CPU", cpu_ratios),
        ("server/client CPU", relative),
        ("others CPU", others),
    ):
        if not values:
            continue
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values
        print(
            f"{name} ratio quartiles: {' '.join(f'{q:.3f}' for q in quartiles)}"
            f" (below 1 in {sum(r < 1 for r in values)} of {len(values)} rounds)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--base", type=Path, help="checkout to compare with (default: this)")
    parser.add_argument(
        "--base-bin", type=Path, help="a virtualenv's bin folder whose runyard serves the base"
    )
    parser.add_argument("--shape", choices=("production", "embedded"), default="production")
    parser.add_argument("--load", choices=sorted(LOADS), default="wait")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200, help="runs per batch")
    args = parser.parse_args(argv)
    if args.base is None and args.base_bin is None:
        parser.error("give --base, --base-bin or both")
    if args.base is not None and not (args.base / "app").is_dir():
        parser.error(f"{args.base} holds no app/ folder")
    if args.base_bin is not None and not (args.base_bin / "runyard").exists():
        parser.error(f"{args.base_bin} holds no runyard executable")
    with contextlib.ExitStack() as stack:
        sides = []
        for name, path, bin_dir in (
            ("base", args.base, args.base_bin or BIN),
            ("this", None, BIN),
        ):
            env = {} if path is None else {"PYTHONPATH": str(path.resolve())}
            if args.shape == "embedded":
                server = RunyardProcess("dev", env, bin_dir=bin_dir)
            else:
                uri = stack.enter_context(scratch_database())
                prefix = stack.enter_context(redis_prefix())
                env.update(DATABASE_URI=uri, REDIS_URI=REDIS_URL, REDIS_KEY_PREFIX=prefix)
                server = RunyardProcess("serve", env, workers=PRODUCTION_WORKERS, bin_dir=bin_dir)
            stack.callback(server.stop)
            server.start()
            sides.append(Side(name, server))
        base, this = sides
        m = asyncio.run(compare((base, this), LOADS[args.load], args.rounds, args.runs))
    report(base, this)
    for error in m.errors:
        print(f"check failed: {error}")
    return 1 if m.error_count else 0


if __name__ == "__main__":
    raise SystemExit(main())
