"""GET /metrics: under Gunicorn every worker's figures add up, whichever worker is scraped; a
worker that dies stops counting in the live gauges but keeps its counts. JSON log lines carry
the run they are about. The embedded server serves /metrics too, behind the API key if set."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REDIS_URL, Server, postgres_database, redis_prefix

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
JOBS_PER_WORKER = 2
WORKERS = 2
SLEEPERS = JOBS_PER_WORKER * WORKERS  # more than one worker can hold at once


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(url: str, **params: str) -> Samples:
    # A new connection per scrape, so Gunicorn hands scrapes to either worker.
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.get("/metrics", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


async def scrape_until(url: str, name: str, wanted: float, timeout: float = 60) -> Samples:
    """Scrape until a gauge reads `wanted` (a worker still booting has not counted yet)."""
    samples: Samples = {}
    async with asyncio.timeout(timeout):
        while value(samples, name) != wanted:
            try:
                samples = await scrape(url)
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def per_process(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["pid"]: v
        for (name, labels), v in samples.items()
        if name == "runyard_runs_running_per_process"
    }


COUNTERS = (
    ("runyard_runs_created_total", {}),
    ("runyard_runs_claimed_total", {}),
    ("runyard_runs_finished_total", {"status": "success"}),
    ("runyard_runs_finished_total", {"status": "error"}),
    ("runyard_run_claim_latency_seconds_count", {}),
    ("runyard_run_duration_seconds_count", {"status": "success"}),
    ("runyard_run_duration_seconds_count", {"status": "error"}),
    ("runyard_events_published_total", {}),
)


def counters(samples: Samples) -> dict[str, float]:
    return {f"{n}{sorted(lbl.items())}": value(samples, n, **lbl) for n, lbl in COUNTERS}


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[Server]:
    """A server of its own, so that no other test's runs move its counters."""
    with postgres_database() as uri, redis_prefix() as prefix:
        env = {
            "DATABASE_URI": uri,
            "REDIS_URI": REDIS_URL,
            "REDIS_KEY_PREFIX": prefix,
            "N_JOBS_PER_WORKER": str(JOBS_PER_WORKER),
            "LOG_JSON": "true",
            "STATS_INTERVAL_SECS": "1",
        }
        with Server("serve", env=env, workers=WORKERS) as server:
            yield server


async def test_metrics_add_up_across_gunicorn_workers(gunicorn: Server) -> None:
    client = get_client(url=gunicorn.url)
    before = await scrape_until(gunicorn.url, "runyard_worker_tasks", JOBS_PER_WORKER * WORKERS)

    async def start(graph: str, payload: dict[str, Any]) -> dict[str, Any]:
        thread = await client.threads.create()
        return await client.runs.create(thread["thread_id"], graph, input=payload)

    sleepers = await asyncio.gather(
        *(start("sleeper", {"steps": 60, "delay": 0.05}) for _ in range(SLEEPERS))
    )
    # Every run at once needs both workers: the live sum adds up their running runs.
    peak = await scrape_until(gunicorn.url, "runyard_runs_running", SLEEPERS, timeout=20)
    pids = per_process(peak)
    assert len(pids) == WORKERS and set(pids.values()) == {JOBS_PER_WORKER}, pids

    quick = [await start("counter", {"steps": 2}) for _ in range(2)]
    boom = await start("boom", {})
    for run in [*sleepers, *quick, boom]:
        await client.runs.join(run["thread_id"], run["run_id"])
    ok_runs = SLEEPERS + len(quick)

    after = [await scrape(gunicorn.url) for _ in range(6)]
    # Any worker answers with the same sums.
    assert all(counters(a) == counters(after[0]) for a in after), [counters(a) for a in after]
    last = after[-1]

    def delta(name: str, **labels: str) -> float:
        return value(last, name, **labels) - value(before, name, **labels)

    assert delta("runyard_runs_created_total") == ok_runs + 1
    assert delta("runyard_runs_claimed_total") == ok_runs + 1
    assert delta("runyard_runs_finished_total", status="success") == ok_runs
    assert delta("runyard_runs_finished_total", status="error") == 1
    assert delta("runyard_run_claim_latency_seconds_count") == ok_runs + 1
    assert delta("runyard_run_duration_seconds_count", status="success") == ok_runs
    assert delta("runyard_run_duration_seconds_count", status="error") == 1
    # Stream mode `values`: each run publishes its input's state and its final one at least.
    assert delta("runyard_events_published_total") >= 2 * ok_runs
    assert value(last, "runyard_runs_running") == 0
    assert value(last, "runyard_runs_pending") == 0
    assert value(last, "runyard_stream_clients") == 0
    assert value(last, "runyard_postgres_up") == 1
    assert value(last, "runyard_redis_up") == 1
    assert value(last, "runyard_fallback_polling") == 0

    # One JSON object per line; the failed run's line names the run and its thread.
    entries = [json.loads(line) for line in gunicorn.log().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "pid"} <= e.keys() for e in entries)
    failed = [e for e in entries if "failed" in e["message"] and e.get("run_id") == boom["run_id"]]
    assert failed and failed[0]["thread_id"] == boom["thread_id"], entries[-20:]
    assert failed[0]["pid"] in {int(p) for p in pids}
    stats = [e["stats"] for e in entries if e["logger"] == "app.worker.pool" and "stats" in e]
    assert stats and {"workers", "busy", "idle", "claimed", "queue_depth", "fallback_polling"} <= (
        stats[-1].keys()
    )


async def test_dead_worker_keeps_its_counts_but_leaves_the_live_gauges(gunicorn: Server) -> None:
    before = await scrape_until(gunicorn.url, "runyard_worker_tasks", JOBS_PER_WORKER * WORKERS)
    old_pids = set(gunicorn.worker_pids())
    victim = min(old_pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        pids = set(gunicorn.worker_pids())
        if victim not in pids and len(pids) == WORKERS:
            break
        assert time.monotonic() < deadline, "Gunicorn did not replace the worker"
        await asyncio.sleep(0.2)
    after = await scrape_until(gunicorn.url, "runyard_worker_tasks", JOBS_PER_WORKER * WORKERS)
    assert str(victim) not in per_process(after)
    assert counters(after) == counters(before)


@pytest.fixture(scope="module")
def embedded_with_key() -> Iterator[Server]:
    with Server("dev", env={"RUNYARD_API_KEYS": "metrics-key"}) as server:
        yield server


async def test_embedded_metrics_behind_the_api_key(embedded_with_key: Server) -> None:
    url = embedded_with_key.url
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.get("/metrics")).status_code == 401
    before = await scrape(url, api_key="metrics-key")  # Prometheus: `params: {api_key: [...]}`
    client = get_client(url=url, api_key="metrics-key")
    thread = await client.threads.create()
    frames = [
        part
        async for part in client.runs.stream(thread["thread_id"], "counter", input={"steps": 2})
    ]
    assert frames
    after = await scrape(url, api_key="metrics-key")
    for name, labels in COUNTERS[:3]:
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name
    assert value(after, "runyard_worker_tasks") == 10
    assert value(after, "runyard_stream_clients") == 0
    assert value(after, "runyard_redis_up") == 1
    assert value(after, "runyard_postgres_up") == 1


async def test_a_run_created_while_a_worker_idles_starts_in_its_process(gunicorn: Server) -> None:
    """Sequential runs on an idle server: each is inserted claimed by the process that took the
    request and started by one of its workers, none waits for a sentinel and a claim."""
    client = get_client(url=gunicorn.url)
    before = await scrape_until(gunicorn.url, "runyard_worker_tasks", JOBS_PER_WORKER * WORKERS)
    async with asyncio.timeout(30):
        while value(before, "runyard_runs_running"):  # an earlier test's runs still going
            await asyncio.sleep(0.05)
            before = await scrape(gunicorn.url)
    for steps in range(1, 6):
        out = await client.runs.wait(None, "counter", input={"steps": steps})
        assert out["count"] == steps
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "counter", input={"steps": 1})
    await client.runs.join(thread["thread_id"], run["run_id"])
    row = await client.runs.get(thread["thread_id"], run["run_id"])
    assert row["status"] == "success"
    after = await scrape(gunicorn.url)
    handed = value(after, "runyard_runs_handed_over_total") - value(
        before, "runyard_runs_handed_over_total"
    )
    claimed = value(after, "runyard_runs_claimed_total") - value(
        before, "runyard_runs_claimed_total"
    )
    assert handed == 6 and claimed == 6
