"""The benchmark: `python -m bench.run` (or `make bench`).

Starts Runyard in the production shape (`runyard serve --workers 2` on a scratch Postgres
database and the machine's Redis under a unique key prefix) and the embedded shape
(`runyard dev` on a fresh data directory), drives it only through `langgraph-sdk`, checks
every result, and prints the figures next to the current targets. Exits 1 when a check
failed (a target missed is not a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn

from bench.machine import machine_facts
from bench.measure import Measurement
from bench.profiling import Profiler, py_spy
from bench.report import ScenarioResult, document, failed, header, summarize, table
from bench.scenarios import SCENARIOS, Context, Scenario, select
from bench.servers import FLOOR, REFERENCE, REFERENCE_ENV, SHAPES, Stack, open_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# A warm-up or one repetition taking longer is an ERROR (the stack is torn down all the same).
REPETITION_TIMEOUT_SECS = 900


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="repeat each scenario N times and report the median of each figure (default 1)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only these scenarios (repeatable, "
        f"comma-separated, prefixes allowed): {', '.join(s.name for s in SCENARIOS)}",
    )
    parser.add_argument(
        "--shape",
        choices=[*SHAPES, REFERENCE, FLOOR, "all"],
        default="all",
        help=f"all: {' and '.join(SHAPES)}; {REFERENCE}: LangGraph's `langgraph dev`, from the "
        f"folder {REFERENCE_ENV} names, on the scenarios it can run; {FLOOR}: a server that "
        "only answers (bench/floor.py), for what the client and the HTTP stack cost alone",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON on stdout (the table goes to stderr)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="where to write the JSON (default bench/results/latest.json)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the server's worker processes (Gunicorn workers, or the embedded "
        "server) with py-spy during the measured repetitions "
        "(figures then include the profiler's overhead)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.profile and py_spy() is None:
        parser.error("--profile needs py-spy: pip install py-spy (make bench-profile does)")
    args.only = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    try:
        args.scenarios = select(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_async(coro: Coroutine[Any, Any, list[Measurement]]) -> list[Measurement]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def repetitions(
    scenario: Scenario, ctx: Context, repeat: int, profiler: Profiler | None
) -> list[Measurement]:
    warm = Measurement()
    if scenario.warmup is not None:
        async with asyncio.timeout(REPETITION_TIMEOUT_SECS):
            await scenario.warmup(ctx, warm)
    out: list[Measurement] = []
    with profiler.recording(ctx.stack.server.worker_pids()) if profiler else _nothing():
        for i in range(repeat):
            async with asyncio.timeout(REPETITION_TIMEOUT_SECS):
                m = await scenario.measure(ctx)
            say(f"    repetition {i + 1}/{repeat}: {_brief(m)}")
            out.append(m)
    if warm.error_count:
        first = out[0]
        first.errors = [f"warm-up: {e}" for e in warm.errors] + first.errors
        first.error_count += warm.error_count
    return out


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _brief(m: Measurement) -> str:
    shown = ", ".join(f"{k}={v:g}" for k, v in list(m.figures.items())[:3])
    return shown + (f"; {m.error_count} check(s) FAILED" if m.error_count else "")


def run_scenario(scenario: Scenario, shape: str, args: argparse.Namespace) -> ScenarioResult:
    started = time.monotonic()
    say(f"== {scenario.name} ({shape}): {scenario.title}")
    stack: Stack | None = None
    try:
        with open_stack(shape, scenario.stack(shape, args.quick)) as stack:
            profiler = None
            if args.profile:
                profiler = Profiler(RESULTS_DIR, f"profile-{shape}-{scenario.name}")
            measurements = run_async(
                repetitions(scenario, Context(stack, args.quick), args.repeat, profiler)
            )
            result = summarize(scenario, shape, args.quick, measurements)
            result.notes = [*stack.notes, *_settings_note(stack)]
            if profiler is not None:
                result.notes.append(f"py-spy profiles: {', '.join(profiler.files)}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        say(traceback.format_exc())
        if stack is not None:
            say(f"server log (tail):\n{stack.server.log_tail(4000)}")
        result = failed(scenario, shape, args.quick, reason)
    result.seconds = round(time.monotonic() - started, 1)
    say(f"   {result.verification} in {result.seconds} s")
    return result


def _settings_note(stack: Stack) -> list[str]:
    shown = {k: v for k, v in stack.server.settings.items() if k not in ("DATABASE_URI",)}
    return [f"server settings: {shown}"]


def _terminate(*_: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # tear the stacks down on `kill` too
    shapes = SHAPES if args.shape == "all" else (args.shape,)
    machine = machine_facts()
    say(
        f"runyard bench ({'quick' if args.quick else 'full'} size, repeat {args.repeat}) on "
        f"{machine['cpu_count']} x {machine['cpu_model']}, {machine['ram_gb']} GB RAM, "
        f"load {machine['load_average_at_start']}"
    )
    results: list[ScenarioResult] = []
    interrupted = False
    try:
        for shape in shapes:
            for scenario in args.scenarios:
                if shape in scenario.shapes:
                    results.append(run_scenario(scenario, shape, args))
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: everything started was stopped; writing the results so far")
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    options = {
        "size": "quick" if args.quick else "full",
        "repeat": args.repeat,
        "shapes": list(shapes),
        "only": args.only,
        "profile": args.profile,
        "interrupted": interrupted,
    }
    doc = document(machine, options, results)
    text = json.dumps(doc, indent=2, default=str)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    rendered = header(machine, options) + table(results)
    if args.json:
        say(rendered)
        print(text)
    else:
        print(rendered)
    say(f"\nJSON written to {args.output}")
    if interrupted:
        return 130
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
