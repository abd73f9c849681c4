"""The official JavaScript clients (`@langchain/langgraph-sdk`, and `@modelcontextprotocol/sdk`
for the MCP endpoint, on Node.js) against Runyard: the scenarios of tests/js/client.mjs on the
embedded server, the production one, and an API-only process whose runs execute elsewhere;
and a stream that goes on, every event once, when the process serving it is killed (the
client reconnects by itself)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, production_env, until

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).resolve().parents[1] / "js"
INSTALL = JS_DIR.parents[1] / "scripts" / "install-js-client"
SCENARIOS = [
    "assistants",
    "threads",
    "streams",
    "background",
    "disconnect",
    "interrupts",
    "errors",
    "store",
    "crons",
    "mcp",
]


@pytest.fixture(scope="session")
def node() -> str:
    """Node.js with the client installed (`make js`, or here, by the same script, when it
    was not)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js is not installed: the JavaScript client's tests need it")
    subprocess.run([INSTALL], check=True, timeout=300)
    return node


def run_scenario(node: str, scenario: str, url: str, *args: str) -> str:
    done = subprocess.run(
        [node, "client.mjs", scenario, url, *args],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{scenario}:\n{done.stdout}\n{done.stderr[-4000:]}"
    assert done.stdout.rstrip().endswith(f"ok {scenario}")
    return done.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(node: str, server: Server, scenario: str) -> None:
    run_scenario(node, scenario, server.url)


@pytest.mark.parametrize("scenario", ["streams", "background", "interrupts", "mcp"])
def test_scenario_across_processes(node: str, api_only: Server, scenario: str) -> None:
    """Served by a process that runs nothing: every stream, join, resume and cancel of
    these scenarios crosses to the production server's workers."""
    run_scenario(node, scenario, api_only.url)


@pytest.fixture
def relay(production: Server, pg_uri: str, redis_key_prefix: str) -> Iterator[Server]:
    """A process of its own that only relays (its runs execute in `production`), so that
    killing it loses a stream's connection and nothing else."""
    env = production_env(pg_uri, redis_key_prefix, N_JOBS_PER_WORKER="0")
    with Server("serve", env=env, workers=1) as server:
        yield server


async def test_stream_survives_the_death_of_its_process(node: str, relay: Server) -> None:
    """SIGKILL the worker serving a JavaScript client's stream midway: the client reconnects
    to the stream's Location with Last-Event-ID, Gunicorn's new worker replays what it
    missed from the log, and the client sees every event once, in order."""
    steps, ready_at = 60, 10
    proc = await asyncio.create_subprocess_exec(
        node,
        "client.mjs",
        "reconnect",
        relay.url,
        str(steps),
        str(ready_at),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert ready.strip() == b"ready"
        [victim] = relay.worker_pids()
        os.kill(victim, signal.SIGKILL)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().strip().splitlines()
    assert lines[-1] == "ok reconnect"
    assert json.loads(lines[-2])["ticks"] == list(range(1, steps + 1))
    # The rest came through the worker Gunicorn started in its place.
    await until(lambda: victim not in relay.worker_pids(), "the worker's replacement")
