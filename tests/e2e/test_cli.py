"""The `runyard` command as an operator runs it: the real binary, as subprocesses, against a
real Postgres and Redis and against the embedded mode; `doctor`, `migrate`, `runs`, `threads`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support import BIN, GRAPHS, REDIS_URL, Server, postgres_database, redis_prefix

pytestmark = pytest.mark.e2e

# Settings the test process may carry that must not leak into a command under test.
_OURS = ("DATABASE_URI", "REDIS_URI", "REDIS_KEY_PREFIX", "RUNYARD_DATA_DIR", "RUNYARD_CONFIG")
# The production server's heartbeat is far slower than the test's deadline for a cancel, so a
# cancel that arrives in time came through Redis, not through the heartbeat's database read.
SLOW_HEARTBEAT_SECS = "30"


def cli_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OURS}
    return {**env, "LANGGRAPH_NO_VERSION_CHECK": "true", **settings}


def runyard(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # Settings also come from ./.env: run away from any checkout's .env.
    return subprocess.run(
        [str(BIN / "runyard"), *args],
        env=env,
        cwd=cwd or tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def failures(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL")]


def line_of(output: str, start: str) -> str:
    """The report line that starts with `start` (e.g. 'OK    migrations')."""
    found = [line for line in output.splitlines() if line.startswith(start)]
    assert found, f"no line starting {start!r} in:\n{output}"
    return found[0]


async def wait_status(client: LangGraphClient, thread_id: str, run_id: str, status: str) -> None:
    async with asyncio.timeout(30):
        while (await client.runs.get(thread_id, run_id))["status"] != status:
            await asyncio.sleep(0.05)


# -- doctor and migrate ---------------------------------------------------------------------


def test_doctor_passes_an_embedded_setup(tmp_path: Path) -> None:
    env = cli_env(RUNYARD_DATA_DIR=str(tmp_path / "data"))
    out = runyard(env, "doctor", "--config", str(GRAPHS), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not failures(out.stdout)
    line_of(out.stdout, 'OK    graph "counter": compiled graph')
    line_of(out.stdout, 'OK    graph "factory": factory')
    assert "not configured: embedded broker, single process only" in out.stdout
    assert not (tmp_path / "data").exists(), "a check must not create the database"


def test_doctor_names_a_graph_that_does_not_import(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import runyard_no_such_module\n")
    config = tmp_path / "langgraph.json"
    agents = GRAPHS.parent / "agents.py"
    graphs = {"fine": f"{agents.as_posix()}:counter", "broken": "./broken.py:graph"}
    config.write_text(json.dumps({"graphs": graphs}))
    env = cli_env(RUNYARD_DATA_DIR=str(tmp_path / "data"))
    out = runyard(env, "doctor", "--config", str(config), cwd=tmp_path)
    assert out.returncode != 0, out.stdout
    failed = line_of(out.stdout, 'FAIL  graph "broken"')
    assert "runyard_no_such_module" in failed
    assert "fix: install runyard_no_such_module" in out.stdout
    line_of(out.stdout, 'OK    graph "fine"')  # the other graphs are still checked
    assert "1 FAIL" in out.stdout.splitlines()[-1]


def test_doctor_reports_invalid_settings_readably(tmp_path: Path) -> None:
    env = cli_env(RUNYARD_DATA_DIR=str(tmp_path / "data"), N_JOBS_PER_WORKER="-1")
    out = runyard(env, "doctor", "--config", str(GRAPHS), cwd=tmp_path)
    assert out.returncode != 0
    assert "N_JOBS_PER_WORKER=-1: Input should be greater than or equal to 0" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_doctor_and_migrate_on_postgres_and_redis(tmp_path: Path) -> None:
    with postgres_database() as uri, redis_prefix() as prefix:
        env = cli_env(DATABASE_URI=uri, REDIS_URI=REDIS_URL, REDIS_KEY_PREFIX=prefix)

        fresh = runyard(env, "doctor", "--config", str(GRAPHS), cwd=tmp_path)
        assert fresh.returncode == 0, fresh.stdout  # behind is a warning: start-up migrates
        behind = line_of(fresh.stdout, "WARN  migrations")
        assert "empty database" in behind and "runyard migrate" in fresh.stdout
        line_of(fresh.stdout, "OK    postgres")
        assert "Redis " in line_of(fresh.stdout, "OK    redis:")
        assert "not in use yet" in line_of(fresh.stdout, "OK    redis prefix")

        migrated = runyard(env, "migrate", cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        assert "applying 0001" in migrated.stdout  # each step is shown
        assert "checkpointer tables" in migrated.stdout
        assert "latest schema" in migrated.stdout.splitlines()[-1]

        again = runyard(env, "doctor", "--config", str(GRAPHS), cwd=tmp_path)
        assert again.returncode == 0 and not failures(again.stdout), again.stdout
        assert "at head" in line_of(again.stdout, "OK    migrations")

        no_redis = {k: v for k, v in env.items() if k != "REDIS_URI"}
        several = runyard(no_redis, "doctor", "--config", str(GRAPHS), "--workers", "3")
        assert several.returncode != 0
        assert "needs REDIS_URI" in line_of(several.stdout, "FAIL  processes")


def test_doctor_gives_up_on_unreachable_services(tmp_path: Path) -> None:
    # Port 9 (discard) on localhost: nothing listens, so connections are refused at once.
    env = cli_env(
        DATABASE_URI="postgresql://postgres@127.0.0.1:9/nothing",
        REDIS_URI="redis://127.0.0.1:9/0",
    )
    started = time.monotonic()
    out = runyard(env, "doctor", "--config", str(GRAPHS), cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert out.returncode != 0
    assert "127.0.0.1:9" in line_of(out.stdout, "FAIL  postgres")
    assert "127.0.0.1:9" in line_of(out.stdout, "FAIL  redis")


# -- runs and threads, production ---------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Server, dict[str, str]]]:
    """One `runyard serve` on its own database and Redis prefix, and the env that points the
    CLI at the same ones."""
    with postgres_database() as uri, redis_prefix() as prefix:
        settings = {"DATABASE_URI": uri, "REDIS_URI": REDIS_URL, "REDIS_KEY_PREFIX": prefix}
        server_env = {
            **settings,
            "N_JOBS_PER_WORKER": "3",
            "BG_JOB_HEARTBEAT_SECS": SLOW_HEARTBEAT_SECS,
            "BG_JOB_LEASE_SECS": "120",
        }
        with Server("serve", env=server_env, workers=1) as server:
            yield server, cli_env(**settings)


async def test_runs_and_threads_commands_against_production(
    stack: tuple[Server, dict[str, str]],
) -> None:
    server, env = stack
    client = get_client(url=server.url)
    thread = await client.threads.create(metadata={"purpose": "cli-test"})
    tid = thread["thread_id"]
    running = await client.runs.create(tid, "sleeper", input={"steps": 10_000, "delay": 0.01})
    queued = await client.runs.create(tid, "counter", input={"steps": 1})
    await wait_status(client, tid, running["run_id"], "running")

    listing = await asyncio.to_thread(runyard, env, "runs", "list", "--thread", tid)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split()[2] for line in listing.stdout.splitlines()[1:]}
    assert rows == {running["run_id"]: "running", queued["run_id"]: "pending"}

    detail = await asyncio.to_thread(runyard, env, "runs", "get", queued["run_id"])
    assert detail.returncode == 0, detail.stderr
    assert f"behind run {running['run_id']} (running)" in detail.stdout

    threads = await asyncio.to_thread(runyard, env, "threads", "list", "--status", "busy")
    assert threads.returncode == 0 and tid in threads.stdout, threads.stdout
    assert "cli-test" in threads.stdout

    pending_cancel = await asyncio.to_thread(runyard, env, "runs", "cancel", queued["run_id"])
    assert pending_cancel.returncode == 0, pending_cancel.stderr
    assert "was pending: interrupted" in pending_cancel.stdout

    started = time.monotonic()
    running_cancel = await asyncio.to_thread(
        runyard, env, "runs", "cancel", running["run_id"], "--wait", "--timeout", "20"
    )
    elapsed = time.monotonic() - started
    assert running_cancel.returncode == 0, running_cancel.stdout + running_cancel.stderr
    assert "through Redis" in running_cancel.stdout
    assert "stopped: interrupted" in running_cancel.stdout
    assert elapsed < float(SLOW_HEARTBEAT_SECS) / 2, elapsed  # Redis, not the heartbeat
    assert (await client.runs.get(tid, running["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"

    again = await asyncio.to_thread(runyard, env, "runs", "cancel", running["run_id"])
    assert again.returncode != 0 and "already ended (interrupted)" in again.stderr
    missing = await asyncio.to_thread(runyard, env, "runs", "get", str(uuid.uuid4()))
    assert missing.returncode != 0 and "not found" in missing.stderr

    # Cancelled mid-graph, the thread waits with nodes left to run, as LangGraph reports it.
    settled = await asyncio.to_thread(runyard, env, "threads", "list", "--status", "interrupted")
    assert tid in settled.stdout, settled.stdout


async def test_rollback_cancel_deletes_a_pending_run(stack: tuple[Server, dict[str, str]]) -> None:
    server, env = stack
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    delayed = await client.runs.create(tid, "counter", input={"steps": 1}, after_seconds=600)

    detail = await asyncio.to_thread(runyard, env, "runs", "get", delayed["run_id"])
    assert "not before" in detail.stdout, detail.stdout

    out = await asyncio.to_thread(
        runyard, env, "runs", "cancel", delayed["run_id"], "--action", "rollback"
    )
    assert out.returncode == 0 and "deleted (rollback)" in out.stdout, out.stdout + out.stderr
    listing = await asyncio.to_thread(runyard, env, "runs", "list", "--thread", tid, "--json")
    assert listing.returncode == 0 and listing.stdout.strip() == "[]", listing.stdout


# -- runs and threads, embedded -----------------------------------------------------------


def test_runs_commands_fail_clearly_without_a_database(tmp_path: Path) -> None:
    env = cli_env(RUNYARD_DATA_DIR=str(tmp_path / "nothing-here"))
    out = runyard(env, "runs", "list", cwd=tmp_path)
    assert out.returncode != 0 and "no embedded database" in out.stderr, out.stderr
    assert not (tmp_path / "nothing-here").exists()


async def test_runs_and_threads_commands_in_embedded_mode() -> None:
    # A fast heartbeat: without Redis, a cancel reaches the worker through the database.
    with Server("dev", env={"BG_JOB_HEARTBEAT_SECS": "0.5"}) as server:
        env = cli_env(RUNYARD_DATA_DIR=str(server.workdir / "data"))
        client = get_client(url=server.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        run = await client.runs.create(tid, "sleeper", input={"steps": 10_000, "delay": 0.01})
        await wait_status(client, tid, run["run_id"], "running")

        listing = await asyncio.to_thread(runyard, env, "runs", "list", "--status", "running")
        assert listing.returncode == 0 and run["run_id"] in listing.stdout, listing.stderr
        threads = await asyncio.to_thread(runyard, env, "threads", "list")
        assert tid in threads.stdout and "busy" in threads.stdout, threads.stdout

        out = await asyncio.to_thread(
            runyard, env, "runs", "cancel", run["run_id"], "--wait", "--timeout", "20"
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "next heartbeat" in out.stdout and "stopped: interrupted" in out.stdout
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"

        doctor = await asyncio.to_thread(runyard, env, "doctor", "--config", str(GRAPHS))
        assert doctor.returncode == 0, doctor.stdout
        assert "at head" in line_of(doctor.stdout, "OK    migrations")


def test_serve_opens_no_control_socket(stack: tuple[Server, dict[str, str]]) -> None:
    """Gunicorn's control socket (one path per user, for `gunicornc` to scale or stop the
    server) stays shut: every server of the machine's user would share it."""
    server, _ = stack
    assert server.proc is not None
    master = psutil.Process(server.proc.pid)
    sockets = [c.laddr for c in master.net_connections(kind="unix")]
    assert not any("gunicorn.ctl" in str(path) for path in sockets), sockets
    assert "Control socket" not in server.log()
