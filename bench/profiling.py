"""py-spy, for where the server's time goes: record the workers while a scenario runs
(`python -m bench.run --profile`), then summarize the collapsed stacks:

    python -m bench.profiling bench/results/profile-production-wait-*.txt

Samples are of busy threads only (py-spy leaves idle ones out), so the shares are shares of
the server's CPU time. "Self" is the leaf frame's package or function; "inclusive" counts a
sample once for every function on its stack.

A socket write that wakes another process (the client, Postgres, Redis) on two busy cores often
leaves the writer waiting for a core, and py-spy counts that wait in the write: 27-30% of a
background load's samples end in one, where `perf` finds the server's kernel time, writes and
all, at 15% of its CPU (docs/performance.md, eighth session). `--no-writes` leaves those
samples out, for the shares of the Python work alone.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE = 250  # samples per second

# Where a sample's time goes, by the innermost Runyard step on its stack (first match wins,
# looking from the leaf up). Stacks py-spy could not read to the root (greenlets, frames
# changing while read) fall back to the package categories below.
PHASES: tuple[tuple[str, str], ...] = (
    ("publish an event (serialize + Redis pipeline)", "EventEmitter.emit"),
    ("claim a run (Runs.next)", "Runs.next"),
    ("read final state (checkpointer)", "read_final_state"),
    ("finalize (Postgres: run, thread)", "WorkerPool._finalize"),
    ("run the graph (LangGraph + checkpoints)", "run_graph (app/agents/executor.py)"),
    ("run the graph (LangGraph + checkpoints)", "stream_graph (app/agents/executor.py)"),
    ("create a run (API: validate, Postgres insert, wake)", "_create (app/services/runs.py)"),
    ("create: idempotency and capacity checks", "create (app/services/runs.py)"),
    ("wait for the end (API: subscribe, poll row)", "wait_terminal"),
    ("stream relay (API: SSE follow)", "follow (app/stream/relay.py)"),
    ("worker idle loop (wake-ups)", "WorkerPool._loop"),
    ("worker heartbeat", "WorkerPool._heartbeat_forever"),
    ("worker sweep (expired leases, keys, threads)", "WorkerPool._sweep_forever"),
    ("run wrapper (cancel, error handling)", "WorkerPool._run"),
    ("Redis pub/sub reader", "RedisBroker._read_forever"),
    ("HTTP request handling (uvicorn, Starlette, FastAPI, models)", "uvicorn/protocols"),
    ("HTTP request handling (uvicorn, Starlette, FastAPI, models)", "starlette/"),
    ("HTTP request handling (uvicorn, Starlette, FastAPI, models)", "fastapi/"),
)
FALLBACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQL through SQLAlchemy + asyncpg (caller not visible)", ("sqlalchemy/", "asyncpg/")),
    ("checkpointer through psycopg (caller not visible)", ("psycopg/", "psycopg_pool/")),
    ("LangGraph (caller not visible)", ("langgraph/", "pregel/", "langchain_core/")),
    ("Redis client (caller not visible)", ("redis/",)),
    ("HTTP (caller not visible)", ("uvicorn/protocols", "starlette/", "fastapi/", "h11/")),
    ("worker threads (asyncio.to_thread)", ("threading.py",)),
)


def py_spy() -> str | None:
    """The py-spy executable, on PATH or next to this Python's; None when not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


class Profiler:
    def __init__(self, out_dir: Path, label: str) -> None:
        self.out_dir = out_dir
        self.label = label
        self.files: list[str] = []

    @contextlib.contextmanager
    def recording(self, pids: list[int]) -> Iterator[None]:
        exe = py_spy()
        assert exe is not None, "checked by the caller"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for pid in pids:
                out = self.out_dir / f"{self.label}-{pid}.txt"
                self.files.append(str(out))
                args = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(RATE)]
                args += ["--nonblocking", "--gil", "-o", str(out)]
                procs.append(
                    subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
            yield
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


# Innermost frames of a socket write, from Python's side (the write itself is in C).
WRITES = (
    "RequestResponseCycle.send (uvicorn/",
    "Connection._do_execute (asyncpg/",
    "BasePipeline._communicate_gen (psycopg/",
    "StreamWriter.writelines (asyncio/",
)


def without_writes(stacks: Counter[tuple[str, ...]]) -> Counter[tuple[str, ...]]:
    """The samples whose innermost frame is not a socket write."""
    return Counter({stack: n for stack, n in stacks.items() if not stack[-1].startswith(WRITES)})


def read_stacks(paths: list[Path]) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def package(frame: str) -> str:
    """`Runs.next (app/store/runs.py:120)` → `app/store`; `f (sqlalchemy/engine/base.py:1)`
    → `sqlalchemy`; the standard library by module (`asyncio`)."""
    location = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    parts = Path(location).parts
    if not parts:
        return "?"
    if parts[0] == "app" and len(parts) > 1:
        return "/".join(parts[:2]).removesuffix(".py")
    if parts[0].startswith("<") or "site-packages" in location:
        return parts[0]
    return parts[0].removesuffix(".py")


def function(frame: str) -> str:
    name, _, location = frame.partition(" (")
    return f"{name} ({location.rpartition(':')[0]})"


def phase(stack: tuple[str, ...]) -> str:
    for frame in reversed(stack):
        name = function(frame)
        for label, marker in PHASES:
            if marker in name:
                return label
    joined = ";".join(stack)
    for label, markers in FALLBACKS:
        if any(m in joined for m in markers):
            return label
    return "event loop and other"


def callers(stacks: Counter[tuple[str, ...]], name: str, top: int, depth: int = 6) -> str:
    """The stacks leading to functions whose name contains `name`, innermost first."""
    total = sum(stacks.values()) or 1
    found: Counter[str] = Counter()
    for stack, count in stacks.items():
        names = [function(frame) for frame in stack]
        for i, fn in enumerate(names):
            if name in fn:
                found[" <- ".join(reversed(names[max(0, i - depth) : i + 1]))] += count
                break
    return "\n".join(f"  {c / total * 100:5.1f}%  {k}" for k, c in found.most_common(top))


def summary(stacks: Counter[tuple[str, ...]], top: int = 25) -> str:
    total = sum(stacks.values()) or 1
    by_package: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    by_phase: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        by_phase[phase(stack)] += count
        by_package[package(stack[-1])] += count
        by_leaf[function(stack[-1])] += count
        for name in {function(frame) for frame in stack}:
            inclusive[name] += count

    def block(title: str, counter: Counter[str], only_app: bool = False) -> list[str]:
        rows = [(n, c) for n, c in counter.most_common() if not only_app or "app/" in n]
        lines = [title]
        lines += [f"  {c / total * 100:5.1f}%  {n}" for n, c in rows[:top]]
        return lines

    lines = [f"{total} samples"]
    lines += block("by step (innermost Runyard step on the stack):", by_phase)
    lines += block("self time by package:", by_package)
    lines += block("self time by function:", by_leaf)
    lines += block("inclusive time, Runyard functions:", inclusive, only_app=True)
    lines += block("inclusive time, all functions:", inclusive)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="py-spy --format raw outputs")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--callers", metavar="NAME", help="show what calls functions named so")
    parser.add_argument(
        "--no-writes", action="store_true", help="leave out samples ending in a socket write"
    )
    args = parser.parse_args(argv)
    stacks = read_stacks(args.files)
    if args.no_writes:
        kept = without_writes(stacks)
        left_out = sum(stacks.values()) - sum(kept.values())
        print(f"{left_out} samples ending in a socket write left out")
        stacks = kept
    if args.callers:
        print(callers(stacks, args.callers, args.top))
    else:
        print(summary(stacks, args.top))


if __name__ == "__main__":
    main()
