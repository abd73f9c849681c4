"""Real services for tests: a private Postgres database, a Redis key prefix, server processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "tests" / "graphs" / "langgraph.json"
PG_HOST = os.environ.get("RUNYARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RUNYARD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("RUNYARD_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("RUNYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    name = f"runyard_test_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_prefix(url: str = REDIS_URL) -> Iterator[str]:
    import redis

    prefix = f"runyard-test-{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def production_env(database_uri: str, prefix: str, **settings: str) -> dict[str, str]:
    """The settings of a `runyard serve` on Postgres and the session's Redis under `prefix`."""
    return {
        "DATABASE_URI": database_uri,
        "REDIS_URI": REDIS_URL,
        "REDIS_KEY_PREFIX": prefix,
        **settings,
    }


async def until(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    what: str,
    timeout: float = 30,
    every: float = 0.1,
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


def wait_http(url: str, deadline: float, proc: subprocess.Popen | None = None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in time")


@contextlib.asynccontextmanager
async def in_process(
    config: Path, data: Path, database_uri: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in this process (its lifespan run: one worker, no Redis), and a client
    over ASGI: for tests that patch the server's code."""
    from app.main import create_app
    from app.settings import Settings

    settings = Settings(
        DATABASE_URI=database_uri,
        REDIS_URI=None,
        RUNYARD_CONFIG=str(config),
        RUNYARD_DATA_DIR=str(data),
        N_JOBS_PER_WORKER=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runyard") as http:
            yield http


# The logs a failed test's report shows (tests/conftest.py): of the servers running when it
# failed, and of those its failure stopped (their folder is gone by the time of the report).
LIVE_SERVERS: set[Server] = set()
LAST_WORDS: list[tuple[str, str]] = []
LOG_TAIL = 6000


class Server:
    """A `runyard dev` or `runyard serve` subprocess on a free port."""

    def __init__(
        self,
        mode: str,
        *,
        env: dict[str, str] | None = None,
        workers: int = 2,
        config: Path = GRAPHS,
    ) -> None:
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="runyard-test-"))
        self.log_path = self.workdir / "server.log"
        self.env = {
            **os.environ,
            "RUNYARD_DATA_DIR": str(self.workdir / "data"),
            "WAKE_TIMEOUT_SECS": "0.5",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        for key in ("DATABASE_URI", "REDIS_URI"):
            if key not in (env or {}):
                self.env.pop(key, None)
        args = [str(BIN / "runyard"), mode, "--config", str(config), "--port", str(self.port)]
        if mode == "serve":
            args += ["--workers", str(workers)]
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_http(f"{self.url}/ok", time.monotonic() + timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.log()}") from None
        LIVE_SERVERS.add(self)
        return self

    def __str__(self) -> str:
        return f"runyard {self.mode} on {self.url}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def cleanup(self) -> None:
        LIVE_SERVERS.discard(self)
        self.stop()
        if not os.environ.get("RUNYARD_TEST_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and self.log_path.exists():
            LAST_WORDS.append((str(self), self.log()[-LOG_TAIL:]))
        self.cleanup()


class PrivateRedis:
    """A redis-server of our own on a spare port, for tests that stop and start Redis, or that
    need it with a password or TLS."""

    def __init__(self, *extra: str, password: str | None = None, tls: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra = list(extra)
        self.password = password
        self.tls = tls  # client ssl options when the server listens with TLS only
        self.proc: subprocess.Popen | None = None

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(port=self.port, db=db, password=self.password, **(self.tls or {}))

    def start(self) -> PrivateRedis:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            ports = ["--port", "0", "--tls-port", str(self.port)]
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [
                exe,
                *ports,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *auth,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if self.client().ping():
                    return self
            time.sleep(0.05)
        raise TimeoutError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def start_again(self) -> PrivateRedis:
        """Back on the same port, empty: as after a restart without persistence."""
        return self.start()


class PrivatePostgres:
    """A Postgres cluster of our own on a spare port, for tests that stop and restart it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="runyard-pg-"))
        self.data = self.dir / "data"
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not versions:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin = versions[-1].parent
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # postgres refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        LIVE_SERVERS.discard(self)
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
