"""The services a benchmark stack stands on: a scratch Postgres database, a Redis key prefix,
and, for the scenarios that need them, a private redis-server or a private Postgres cluster.
Everything here is created for one stack and removed when it is left, even on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

PG_HOST = os.environ.get("RUNYARD_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RUNYARD_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("RUNYARD_BENCH_PG_USER", "postgres")
REDIS_URL = os.environ.get("RUNYARD_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_sql(sql: str, host: str = PG_HOST, port: int = PG_PORT) -> None:
    import psycopg

    with psycopg.connect(
        host=host, port=port, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@contextlib.contextmanager
def scratch_database(host: str = PG_HOST, port: int = PG_PORT) -> Iterator[str]:
    """A new, empty database on the given Postgres, dropped on exit."""
    name = f"runyard_bench_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"', host, port)
    try:
        yield f"postgresql://{PG_USER}@{host}:{port}/{name}"
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', host, port)


@contextlib.contextmanager
def redis_prefix(url: str = REDIS_URL) -> Iterator[str]:
    """A key prefix no one else uses on the machine's Redis; its keys are deleted on exit."""
    import redis

    prefix = f"runyard-bench-{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            client.close()


class PrivateRedis:
    """A redis-server of our own on a free port: the one scenario that stops Redis stops this,
    never the machine's shared one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        import redis

        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                client = redis.Redis(port=self.port)
                if client.ping():
                    client.close()
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrivatePostgres:
    """A Postgres cluster of our own on a free port, with room for many connections.

    The machine's Postgres allows 100 connections and is shared; a server running 1,000 runs
    at once opens more than that, so the concurrent-streams scenario uses this instead.
    Durability settings are Postgres' defaults (fsync on), as on the shared server."""

    def __init__(self, max_connections: int, *settings: str) -> None:
        self.port = free_port()
        self.max_connections = max_connections
        self.settings = settings  # more `name=value` server settings
        self.dir = Path(tempfile.mkdtemp(prefix="runyard-bench-pg-"))
        self.data = self.dir / "data"
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
        )
        if not versions:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin = versions[-1].parent

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # postgres refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", PG_USER)
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections} -c shared_buffers=128MB"
        )
        options += "".join(f" -c {setting}" for setting in self.settings)
        log = str(self.dir / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
