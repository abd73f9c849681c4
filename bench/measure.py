"""Figures and checks: percentiles, a pool of concurrent clients, stream verification, and a
sampler of the server's memory."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from bench.servers import RunyardProcess

# No single request of the benchmark should take longer; one that does fails verification.
REQUEST_TIMEOUT = httpx.Timeout(connect=10, read=120, write=60, pool=60)
MAX_ERRORS_KEPT = 10


def client(url: str) -> LangGraphClient:
    """The official SDK client, with no API key from the environment."""
    return get_client(url=url, api_key=None, timeout=REQUEST_TIMEOUT)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1), interpolated between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_figures(prefix: str, seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {
        f"{prefix}_p50_ms": round(percentile(seconds, 0.50) * 1000, 2),
        f"{prefix}_p95_ms": round(percentile(seconds, 0.95) * 1000, 2),
        f"{prefix}_p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
        f"{prefix}_max_ms": round(max(seconds, default=math.nan) * 1000, 2),
    }


def stalled(seconds: list[float], limit: float = 10.0) -> int:
    """Calls slower than `limit` seconds: with trivial runs, a run that was lost and re-run
    after its lease expired, not a slow server."""
    return sum(1 for s in seconds if s > limit)


@dataclass
class Measurement:
    """What one repetition of a scenario found."""

    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def fail(self, message: str) -> None:
        """A verification failure: the scenario is FAILED, whatever its figures."""
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


async def run_concurrently(
    total: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> float:
    """Call one(i) for i in 0..total-1, `concurrency` at a time; returns the wall time."""
    counter = iter(range(total))

    async def lane() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, total))))
    return time.perf_counter() - started


@dataclass
class StreamTally:
    """Checks one run's stream: every custom event `{"token", "seq", "of"}` of this run, each
    once, in order, with rising SSE ids, and nothing but metadata besides."""

    token: str
    expected: int
    seen: set[int] = field(default_factory=set)
    highest: int = 0
    last_id: int = 0
    reordered: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    first_at: float | None = None
    values: Any = None  # the last `values` event: the run's state when it ended

    def feed(self, event: str, data: Any, event_id: str | None) -> bool:
        """Account for one stream part; True when it was one of the run's custom events."""
        if event == "metadata":
            return False
        if event == "values":
            self.values = data
            return False
        if event != "custom":
            self.problems.append(f"unexpected {event!r} event: {str(data)[:200]}")
            return False
        if self.first_at is None:
            self.first_at = time.perf_counter()
        if not isinstance(data, dict) or data.get("token") != self.token:
            self.problems.append(f"event of another run or malformed: {str(data)[:200]}")
            return True
        seq = int(data["seq"])
        if seq in self.seen:
            self.duplicates += 1
        elif seq < self.highest:
            self.reordered += 1
        self.seen.add(seq)
        self.highest = max(self.highest, seq)
        if event_id is not None:
            current = int(event_id.split("-", 1)[0])
            if current <= self.last_id:
                self.problems.append(f"SSE id {event_id} after {self.last_id}")
            self.last_id = current
        return True

    @property
    def lost(self) -> int:
        return self.expected - len(self.seen & set(range(1, self.expected + 1)))

    def verify(self, m: Measurement, *, complete: bool = True, output: Any = None) -> None:
        """Record every problem on the measurement. `complete`: all events must be there
        (False for a cancelled run: only those up to the cancel, without gaps). `output`: what
        the last `values` event must be."""
        if output is not None and self.values != output:
            m.fail(f"run {self.token[:8]}: final values {str(self.values)[:200]}")
        for problem in self.problems:
            m.fail(f"run {self.token[:8]}: {problem}")
        if self.duplicates or self.reordered:
            m.fail(
                f"run {self.token[:8]}: {self.duplicates} duplicated and {self.reordered} "
                "reordered events"
            )
        missing = self.lost if complete else self.highest - len(self.seen)
        if missing:
            m.fail(f"run {self.token[:8]}: {missing} of {self.expected} events lost")


class MemorySampler:
    """The server's resident memory (summed over its processes), sampled in a thread."""

    def __init__(self, server: RunyardProcess, interval: float = 0.1) -> None:
        self.server = server
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss_bytes())


class CpuMeter:
    """CPU seconds the server's processes and this client spent between enter and exit, and
    what the whole machine did meanwhile: the rest of its busy time (Postgres, Redis and any
    other process), its idle time, and the time the hypervisor gave its cores to other guests
    (steal), which is what makes this machine's speed drift."""

    def __init__(self, server: RunyardProcess) -> None:
        self.server = server
        self.server_seconds = 0.0
        self.client_seconds = 0.0
        self.others_seconds = 0.0
        self.idle_seconds = 0.0
        self.steal_seconds = 0.0

    def __enter__(self) -> CpuMeter:
        self._server0 = self.server.cpu_seconds()
        self._client0 = time.process_time()
        self._machine0 = psutil.cpu_times()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server_seconds = self.server.cpu_seconds() - self._server0
        self.client_seconds = time.process_time() - self._client0
        before, after = self._machine0, psutil.cpu_times()
        busy = _busy(after) - _busy(before)
        self.others_seconds = max(0.0, busy - self.server_seconds - self.client_seconds)
        self.idle_seconds = _idle(after) - _idle(before)
        self.steal_seconds = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)

    def machine_figures(self, per: float = 1.0, unit: str = "s") -> dict[str, float]:
        """The machine's side of the measurement, divided by `per` (runs), for the JSON."""
        scale = 1000 / per if unit == "ms" else 1 / per
        suffix = "_ms_per_run" if unit == "ms" else "_s"
        return {
            f"others_cpu{suffix}": round(self.others_seconds * scale, 2),
            f"idle_cpu{suffix}": round(self.idle_seconds * scale, 2),
            f"steal{suffix}": round(self.steal_seconds * scale, 2),
        }


def _busy(times: Any) -> float:
    """CPU time spent running anything (Linux counts guest time in user time already)."""
    fields = ("user", "nice", "system", "irq", "softirq")
    return sum(getattr(times, name, 0.0) for name in fields)


def _idle(times: Any) -> float:
    return times.idle + getattr(times, "iowait", 0.0)
