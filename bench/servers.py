"""Runyard itself, started the way it is deployed: `runyard serve` (Gunicorn, Postgres, Redis)
or `runyard dev` (one process, SQLite, in-memory broker), on free ports, torn down on exit."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.floor import READY_LINE as FLOOR_READY_LINE
from bench.services import (
    REDIS_URL,
    PrivatePostgres,
    PrivateRedis,
    free_port,
    redis_prefix,
    scratch_database,
)

BENCH_DIR = Path(__file__).resolve().parent
CONFIG = BENCH_DIR / "langgraph.json"
BIN = Path(sys.executable).parent
SHAPES = ("production", "embedded")
# LangGraph's own dev server (`langgraph dev`, in memory, one process), measured with the same
# client and checks when asked for (--shape reference). Installed outside the repository:
# RUNYARD_BENCH_REFERENCE names the folder holding its `langgraph` command.
REFERENCE = "reference"
REFERENCE_ENV = "RUNYARD_BENCH_REFERENCE"
# A server that only answers (bench/floor.py): what the client and the HTTP stack cost alone.
FLOOR = "floor"
PRODUCTION_WORKERS = 2
# Only how long a stopping server waits for unfinished runs: keeps teardown short.
BASE_ENV = {"BG_JOB_SHUTDOWN_GRACE_SECS": "2"}


def _clean_environ() -> dict[str, str]:
    """This process's environment without any Runyard setting: the bench sets its own."""
    from app.settings import Settings

    names = set(Settings.model_fields)
    return {k: v for k, v in os.environ.items() if k not in names}


class RunyardProcess:
    """One `runyard dev` or `runyard serve` process (and its Gunicorn workers)."""

    # What the server logs once per worker process when it is ready to take requests.
    ready_line = " ready: "

    def __init__(
        self, mode: str, env: dict[str, str], *, workers: int = 1, bin_dir: Path = BIN
    ) -> None:
        self.mode = mode
        self.workers = workers if mode == "serve" else 1
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="runyard-bench-"))
        self.log_path = self.workdir / "server.log"
        self.settings = {**BASE_ENV, **env}
        self.env = {
            **_clean_environ(),
            "RUNYARD_DATA_DIR": str(self.workdir / "data"),
            **self.settings,
        }
        self.args = [str(bin_dir / "runyard"), mode, "--config", str(CONFIG)]
        self.args += ["--port", str(self.port)]
        if mode == "serve":
            self.args += ["--workers", str(self.workers)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> RunyardProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        """Until /ok answers and every worker has logged that it is ready."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runyard {self.mode} exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                ok = httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200
                if ok and self.log_tail(200_000).count(self.ready_line) >= self.workers:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"runyard {self.mode} not ready in time:\n{self.log_tail()}")

    def log_tail(self, size: int = 8_000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""

    def tree(self) -> list[psutil.Process]:
        """The server's processes: the master and its workers."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        return []

    def worker_pids(self) -> list[int]:
        """The processes that serve requests and run graphs (Gunicorn workers, or the one)."""
        processes = self.tree()
        return (
            [p.pid for p in processes[1:]] if self.mode == "serve" else [p.pid for p in processes]
        )

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not os.environ.get("RUNYARD_BENCH_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


class ReferenceProcess(RunyardProcess):
    """`langgraph dev` on the bench's graphs: LangGraph's in-memory server, for comparison."""

    # /ok answers before its queue starts; this line says the queue's workers are up.
    ready_line = "background workers"

    def __init__(self, jobs_per_worker: int | None) -> None:
        super().__init__("dev", {})
        folder = os.environ.get(REFERENCE_ENV)
        if not folder or not (Path(folder) / "langgraph").exists():
            raise RuntimeError(
                f"--shape {REFERENCE} needs {REFERENCE_ENV}: the folder of a `langgraph` command "
                'installed with `pip install "langgraph-cli[inmem]"` in a venv of its own'
            )
        self.settings = {"n_jobs_per_worker": str(jobs_per_worker or 10)}
        self.env = {
            **os.environ,
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
        }
        # It reads graph paths relative to where it runs, and keeps its files there: its own
        # config, with the bench's graphs by absolute path, in its scratch folder.
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "langgraph.json"
        graphs = json.loads(CONFIG.read_text())["graphs"]
        config.write_text(
            json.dumps(
                {
                    "dependencies": [str(BENCH_DIR)],
                    "graphs": {k: str(BENCH_DIR / v) for k, v in graphs.items()},
                }
            )
        )
        self.args = [
            str(Path(folder) / "langgraph"),
            "dev",
            "--no-browser",
            "--no-reload",
            "--config",
            str(config),
            "--port",
            str(self.port),
            "--n-jobs-per-worker",
            self.settings["n_jobs_per_worker"],
            "--server-log-level",
            "WARNING",
        ]


class FloorProcess(RunyardProcess):
    """`python -m bench.floor`: the bench's answers without a server behind them."""

    ready_line = FLOOR_READY_LINE

    def __init__(self) -> None:
        super().__init__("dev", {})
        self.args = [sys.executable, "-m", "bench.floor", "--port", str(self.port)]
        self.env = {**os.environ, "PYTHONPATH": str(BENCH_DIR.parent)}


@dataclass(frozen=True)
class StackSpec:
    """What a scenario needs besides the plain server."""

    jobs_per_worker: int | None = None  # N_JOBS_PER_WORKER; None: the server's default
    api_process: bool = False  # a second `serve --workers 1` that executes nothing
    private_redis: bool = False  # Redis of our own, which the scenario may stop
    private_postgres: int = 0  # max_connections of a private cluster; 0: the machine's
    env: dict[str, str] = field(default_factory=dict)  # more environment for the servers


@dataclass
class Stack:
    shape: str
    server: RunyardProcess
    api: RunyardProcess | None = None
    redis: PrivateRedis | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


def _jobs_env(spec: StackSpec) -> dict[str, str]:
    if spec.jobs_per_worker is None:
        return {}
    return {"N_JOBS_PER_WORKER": str(spec.jobs_per_worker)}


@contextlib.contextmanager
def open_stack(shape: str, spec: StackSpec) -> Iterator[Stack]:
    """Start everything the scenario needs; stop and delete all of it on exit."""
    with contextlib.ExitStack() as stack:
        if shape == REFERENCE:
            reference = ReferenceProcess(spec.jobs_per_worker)
            stack.callback(reference.stop)
            yield Stack(shape, reference.start())
            return
        if shape == FLOOR:
            floor = FloorProcess()
            stack.callback(floor.stop)
            yield Stack(shape, floor.start())
            return
        if shape == "embedded":
            server = RunyardProcess("dev", {**_jobs_env(spec), **spec.env})
            stack.callback(server.stop)
            yield Stack(shape, server.start())
            return
        notes: list[str] = []
        if spec.private_postgres:
            cluster = stack.enter_context(PrivatePostgres(spec.private_postgres))
            uri = stack.enter_context(scratch_database("127.0.0.1", cluster.port))
            notes.append(f"private Postgres cluster, max_connections={spec.private_postgres}")
        else:
            uri = stack.enter_context(scratch_database())
        redis: PrivateRedis | None = None
        if spec.private_redis:
            redis = stack.enter_context(PrivateRedis())
            redis_url = redis.url
            notes.append("private redis-server")
        else:
            redis_url = REDIS_URL
        prefix = stack.enter_context(redis_prefix(redis_url))
        env = {"DATABASE_URI": uri, "REDIS_URI": redis_url, "REDIS_KEY_PREFIX": prefix}
        server = RunyardProcess(
            "serve", {**env, **_jobs_env(spec), **spec.env}, workers=PRODUCTION_WORKERS
        )
        stack.callback(server.stop)
        server.start()
        api = None
        if spec.api_process:
            api = RunyardProcess("serve", {**env, "N_JOBS_PER_WORKER": "0"}, workers=1)
            stack.callback(api.stop)
            api.start()
        yield Stack(shape, server, api, redis, notes)
