"""What LangGraph itself costs, with no server around it: `python -m bench.graph_cost`.

Runs the benchmark's graphs in one process (uvloop), as the server's worker runs a stateless
run (its `run_graph`, with an in-memory checkpointer and the stream modes the scenarios ask
for), many at once, and prints the CPU time per run and per event. Beside it, the same runs
read from LangGraph's `astream` iterator (what the server did before its stream hooks), and
the same sleeps with one queue hand-off per event in plain asyncio: what delivering the
events costs without LangGraph's loop. The difference is LangGraph's share of a scenario,
which no change to the server can remove; compare it with the server's CPU in the same
scenario (`server_cpu_s`).

    python -m bench.graph_cost                      # the bursts' runs: 50 events, 20 ms apart
    python -m bench.graph_cost --events 10 --delay 0 --runs 1000 --concurrency 16
    python -m bench.graph_cost --graph one --runs 1000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import uvloop
from langgraph.checkpoint.memory import InMemorySaver

from app.agents.executor import GraphCall, run_graph
from app.worker.execute import durability_of
from bench.graphs import emit, emit_input, one

STREAM_MODES = ["custom", "values"]


async def langgraph_run(graph: str, events: int, delay: float, *, hooks: bool = True) -> int:
    """One run as the server executes a stateless one, through the server's own `run_graph`
    and with its durability; returns the chunks streamed."""
    compiled = (emit if graph == "emit" else one).copy(update={"checkpointer": InMemorySaver()})
    token = uuid.uuid4().hex
    graph_input = emit_input(token, events, delay) if graph == "emit" else {"token": token}
    chunks = 0

    def count(name: str, payload: object) -> None:
        nonlocal chunks
        chunks += 1

    call = GraphCall(
        input=graph_input,
        config={"configurable": {"thread_id": token}},
        stream_modes=STREAM_MODES,
        durability=durability_of({"temporary": True, "stream_mode": STREAM_MODES}),
    )
    await run_graph(compiled, call, count, hooks=hooks)
    return chunks


async def iterator_run(graph: str, events: int, delay: float) -> int:
    """The same, read from `astream`'s iterator instead of through the stream hooks."""
    return await langgraph_run(graph, events, delay, hooks=False)


async def plain_run(graph: str, events: int, delay: float) -> int:
    """The same sleeps, and each event handed from a producer task to its reader."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    total, delay = (events, delay) if graph == "emit" else (1, 0.0)

    async def produce() -> None:
        for seq in range(total):
            if delay:
                await asyncio.sleep(delay)
            queue.put_nowait(seq)
        queue.put_nowait(None)

    producer = asyncio.ensure_future(produce())
    chunks = 0
    while await queue.get() is not None:
        chunks += 1
    await producer
    return chunks


async def measure(
    run: Callable[[str, int, float], Awaitable[int]], args: argparse.Namespace
) -> float:
    """CPU seconds of `args.runs` runs, `args.concurrency` at a time."""
    remaining = iter(range(args.runs))

    async def lane() -> None:
        for _ in remaining:
            await run(args.graph, args.events, args.delay)

    started = time.process_time()
    await asyncio.gather(*(lane() for _ in range(min(args.concurrency, args.runs))))
    return time.process_time() - started


async def main(args: argparse.Namespace) -> None:
    events = args.events if args.graph == "emit" else 1
    shape = f"{events} events, {args.delay * 1000:g} ms apart"
    if args.graph == "one":
        shape = "one node, one output"
    await measure(langgraph_run, argparse.Namespace(**{**vars(args), "runs": 20}))  # warm-up
    runs = {
        "langgraph": langgraph_run,
        "langgraph, iterator": iterator_run,
        "plain asyncio": plain_run,
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):  # interleaved: this machine's speed drifts
        for name, run in runs.items():
            results[name].append(await measure(run, args))
    print(
        f"{args.runs} runs of {args.graph!r} ({shape}), {args.concurrency} at a time; "
        f"medians of {args.repeat}"
    )
    print(f"{'':20}{'CPU s':>10}{'ms/run':>10}{'µs/event':>10}")
    for name, seconds in results.items():
        cpu = statistics.median(seconds)
        per_run = cpu / args.runs
        print(f"{name:20}{cpu:10.2f}{per_run * 1e3:10.2f}{per_run / events * 1e6:10.1f}")


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.graph_cost", description=__doc__)
    parser.add_argument("--graph", choices=("emit", "one"), default="emit")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    uvloop.run(main(parser.parse_args(argv)))


if __name__ == "__main__":
    cli()
