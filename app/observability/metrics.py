"""Every Prometheus metric Runyard exports, and the few helpers that record them.

Under Gunicorn the metrics live in multi-process mode (PROMETHEUS_MULTIPROC_DIR, set up by the
master: observability/gunicorn_hooks.py): each worker writes its own files and a scrape of any
worker adds them up. That mode is chosen when prometheus_client is first imported, so nothing
in the Gunicorn master imports this module before the directory is set. Gauges therefore say
how to combine processes: `livesum` for what each process holds, `livemostrecent` for what
every process measures alike (the freshest reading wins, and a dead worker's is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from app.container import Container

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Queue depth and health are read at most this often per process, however often it is scraped.
SAMPLE_EVERY_SECS = 1.0
SAMPLE_TIMEOUT_SECS = 2.0

RUNS_CREATED = Counter("runyard_runs_created", "Runs accepted (created as pending).")
RUNS_CLAIMED = Counter("runyard_runs_claimed", "Runs claimed by a worker, every claim counted.")
RUNS_HANDED_OVER = Counter(
    "runyard_runs_handed_over",
    "Runs inserted claimed and started by an idle worker of the process that created them.",
)
RUNS_FINISHED = Counter("runyard_runs_finished", "Runs that reached a terminal status.", ["status"])
RUNS_PENDING = Gauge(
    "runyard_runs_pending",
    "Pending runs in the database (queue depth), delayed ones included.",
    multiprocess_mode="livemostrecent",
)
RUNS_RUNNING = Gauge(
    "runyard_runs_running", "Runs executing now, all processes.", multiprocess_mode="livesum"
)
RUNS_RUNNING_PER_PROCESS = Gauge(
    "runyard_runs_running_per_process",
    "Runs executing now, by server process (pid label).",
    multiprocess_mode="liveall",
)
WORKER_TASKS = Gauge(
    "runyard_worker_tasks",
    "Worker tasks (N_JOBS_PER_WORKER) of the live processes.",
    multiprocess_mode="livesum",
)
CLAIM_LATENCY = Histogram(
    "runyard_run_claim_latency_seconds",
    "From a run's creation (or its after_seconds delay) to its first claim.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
RUN_DURATION = Histogram(
    "runyard_run_duration_seconds",
    "From claim to the outcome written, by terminal status.",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
STREAM_CLIENTS = Gauge("runyard_stream_clients", "Open SSE streams.", multiprocess_mode="livesum")
EVENTS_PUBLISHED = Counter("runyard_events_published", "Run events published to the broker.")
REDIS_UP = Gauge(
    "runyard_redis_up",
    "1 when the broker answers a ping (the in-process broker always does).",
    multiprocess_mode="livemostrecent",
)
POSTGRES_UP = Gauge(
    "runyard_postgres_up",
    "1 when the database answers (SQLite in the embedded mode).",
    multiprocess_mode="livemostrecent",
)
FALLBACK_POLLING = Gauge(
    "runyard_fallback_polling",
    "1 while Redis is unreachable and workers poll the database for work.",
    multiprocess_mode="livemostrecent",
)
WEBHOOKS_DELIVERED = Counter("runyard_webhooks_delivered", "Webhook deliveries that succeeded.")
WEBHOOKS_FAILED = Counter(
    "runyard_webhooks_failed", "Webhook deliveries given up after every attempt."
)
CRONS_FIRED = Counter("runyard_crons_fired", "Runs created by crons.")

# Every status a run can end with, so each series exists (at 0) from the start.
for _status in ("success", "error", "timeout", "interrupted"):
    RUNS_FINISHED.labels(_status)


def run_claimed(run: dict[str, Any]) -> None:
    RUNS_CLAIMED.inc()
    if run.get("claims", 1) != 1:
        return  # claimed again: it waited on a lost worker or a retry delay, not the queue
    # A metric must never stop a worker from running the run it just claimed.
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        marks = [_utc(run.get(k)) for k in ("created_at", "not_before", "started_at")]
        created, not_before, started = marks
        if created is None or started is None:
            return
        due = max(created, not_before) if not_before is not None else created
        # Two clocks (the creating process's and the claiming database's): never below zero.
        CLAIM_LATENCY.observe(max(0.0, (started - due).total_seconds()))


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every one Runyard stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def run_finished(status: str, seconds: float | None = None) -> None:
    RUNS_FINISHED.labels(status).inc()
    if seconds is not None:
        RUN_DURATION.labels(status).observe(seconds)


@contextlib.contextmanager
def running() -> Iterator[None]:
    RUNS_RUNNING.inc()
    RUNS_RUNNING_PER_PROCESS.inc()
    try:
        yield
    finally:
        RUNS_RUNNING.dec()
        RUNS_RUNNING_PER_PROCESS.dec()


def record_health(*, pending: int | None, redis_up: bool, fallback: bool) -> None:
    """A fresh reading of the queue and the backing services; `pending` None: the database
    did not answer."""
    if pending is not None:
        RUNS_PENDING.set(pending)
    POSTGRES_UP.set(pending is not None)
    REDIS_UP.set(redis_up)
    FALLBACK_POLLING.set(fallback)


_last_sample = 0.0


async def sample(c: Container) -> None:
    """Refresh the gauges read from outside the process, at most once per SAMPLE_EVERY_SECS:
    one COUNT and one ping however many scrapes arrive."""
    global _last_sample
    now = time.monotonic()
    if now - _last_sample < SAMPLE_EVERY_SECS:
        return
    _last_sample = now
    pending: int | None
    try:
        pending = await asyncio.wait_for(c.runs.count_pending(), SAMPLE_TIMEOUT_SECS)
    except Exception:
        pending = None
    redis_up = await c.broker.ping()
    record_health(pending=pending, redis_up=redis_up, fallback=not c.broker.healthy)


def render() -> tuple[bytes, str]:
    """The exposition of every process (multi-process mode) or of this one."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        registry = CollectorRegistry()
        registry.register(_ReadableFiles(path))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# A metrics file holds at least its 8-byte header once its process has set it up.
_HEADER_BYTES = 8


class _ReadableFiles:
    """prometheus_client's multi-process collection, without the files a process is still
    creating: the library creates a file empty and sizes it after (client_python issue 1199),
    and one empty file fails the whole scrape (a 500 while a replaced worker boots)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Any:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = []
        for name in os.listdir(self.path):
            if not name.endswith(".db"):
                continue
            full = os.path.join(self.path, name)
            with contextlib.suppress(OSError):  # removed meanwhile (a dead worker's gauges)
                if os.path.getsize(full) >= _HEADER_BYTES:
                    files.append(full)
        return MultiProcessCollector.merge(files, accumulate=True)
