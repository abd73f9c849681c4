"""Log formatting, the run context on log lines, the metric helpers and the /metrics guard."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import values as prometheus_values

from app.api.guards import ApiKeyGuard
from app.observability import gunicorn_hooks, metrics
from app.observability.logs import JsonFormatter, RunContextFilter, TextFormatter, run_context


def make_record(message: str = "hello %s", *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("runyard.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    RunContextFilter().filter(record)
    return record


def test_json_formatter_writes_one_object_per_record() -> None:
    line = JsonFormatter().format(make_record("hello %s", "world", attempt=2, when=datetime.now()))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "WARNING" and entry["logger"] == "runyard.test"
    assert isinstance(entry["pid"], int)
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert entry["attempt"] == 2 and isinstance(entry["when"], str)
    assert "run_id" not in entry and "thread_id" not in entry  # no run, no empty fields


def test_json_formatter_keeps_a_traceback_inside_the_object() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        record = make_record("failed")
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: broken" in entry["exc_info"]


def test_log_lines_inside_a_run_carry_its_ids() -> None:
    with run_context("run-1", "thread-1"):
        record = make_record("inside")
    outside = make_record("outside")
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["run_id"], entry["thread_id"]) == ("run-1", "thread-1")
    assert TextFormatter().format(record).endswith("inside run_id=run-1 thread_id=thread-1")
    assert TextFormatter().format(outside).endswith("outside")


async def test_tasks_started_inside_a_run_inherit_its_ids() -> None:
    async def tag() -> str | None:
        return make_record("in a task").run_id  # type: ignore[attr-defined]

    with run_context("run-2", "thread-2"):
        task = asyncio.create_task(tag())
    assert await task == "run-2"


def test_text_formatter_tags_the_first_line_of_a_traceback() -> None:
    try:
        raise RuntimeError("down")
    except RuntimeError:
        with run_context("run-3", "thread-3"):
            record = make_record("failed")
        record.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(record).splitlines()
    assert first.endswith("failed run_id=run-3 thread_id=thread-3")
    assert rest[-1] == "RuntimeError: down"


def test_claim_latency_counts_from_the_due_time_of_a_first_claim() -> None:
    created = datetime(2030, 1, 1, tzinfo=UTC)

    def observed() -> float:
        return metrics.CLAIM_LATENCY._sum.get()

    start = observed()
    # SQLite's naive datetimes are UTC.
    naive = {"claims": 1, "created_at": created.replace(tzinfo=None)}
    metrics.run_claimed({**naive, "started_at": created + timedelta(seconds=2)})
    assert observed() - start == pytest.approx(2)
    delayed = {"claims": 1, "created_at": created, "not_before": created + timedelta(seconds=10)}
    metrics.run_claimed({**delayed, "started_at": created + timedelta(seconds=11)})
    assert observed() - start == pytest.approx(3)
    reclaimed = {"claims": 2, "created_at": created, "started_at": created + timedelta(hours=1)}
    metrics.run_claimed(reclaimed)
    assert observed() - start == pytest.approx(3)


def test_master_hooks_prepare_and_remove_the_metrics_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hooks export what they set up: keep that out of this process's real environment,
    # which later tests hand to the servers they start.
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in (gunicorn_hooks.MULTIPROC_ENV, gunicorn_hooks.OWNED_ENV)
    }
    real_environ = dict(os.environ)
    monkeypatch.setattr(os, "environ", environ)
    # This process loaded prometheus_client already, so on_starting switches its value class.
    monkeypatch.setattr(prometheus_values, "ValueClass", prometheus_values.ValueClass)
    gunicorn_hooks.on_starting(None)
    made = Path(os.environ[gunicorn_hooks.MULTIPROC_ENV])
    assert made.is_dir() and not any(made.iterdir())
    gunicorn_hooks.on_exit(None)
    assert not made.exists()

    # A directory the operator chose is emptied of old figures, and kept.
    del environ[gunicorn_hooks.OWNED_ENV]
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    (chosen / "counter_123.db").write_bytes(b"old")
    (chosen / "notes.txt").write_text("not ours")
    environ[gunicorn_hooks.MULTIPROC_ENV] = str(chosen)
    gunicorn_hooks.on_starting(None)
    assert sorted(p.name for p in chosen.iterdir()) == ["notes.txt"]
    gunicorn_hooks.on_exit(None)
    assert chosen.is_dir()
    monkeypatch.undo()
    assert dict(os.environ) == real_environ


def test_the_gunicorn_master_does_not_load_prometheus_client() -> None:
    """The library picks multi-process mode at import, and workers inherit the master's
    modules: an import before on_starting sets the directory would leave each worker alone."""
    code = (
        "import sys, app.cli, app.cli.server, app.observability.gunicorn_hooks; "
        "assert 'prometheus_client' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_a_metrics_file_still_being_created_does_not_fail_the_scrape(tmp_path: Path) -> None:
    """prometheus_client creates a worker's file empty and sizes it after; a scrape meanwhile
    read it and failed as a whole (a 500 from /metrics while a replaced worker booted)."""
    code = (
        "from pathlib import Path; import os, sys; "
        "from app.observability import metrics; "
        "metrics.RUNS_CREATED.inc(); "
        "Path(os.environ['PROMETHEUS_MULTIPROC_DIR'], 'counter_999999.db').touch(); "
        "body, _ = metrics.render(); "
        "assert b'runyard_runs_created_total 1.0' in body, body"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], env=env)


async def _status(guard: ApiKeyGuard, path: str, headers: list | None = None) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers or []}
    await guard(scope, receive, send)
    return sent[0]["status"]


async def test_metrics_need_the_api_key_unless_made_public() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    keys = frozenset({"k"})
    guarded = ApiKeyGuard(app, keys)
    assert await _status(guarded, "/metrics") == 401
    assert await _status(guarded, "/metrics", [(b"x-api-key", b"k")]) == 200
    public = ApiKeyGuard(app, keys, open_paths=frozenset({"/metrics"}))
    assert await _status(public, "/metrics") == 200
    assert await _status(public, "/info") == 401
