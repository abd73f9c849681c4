"""The REDIS_URI forms deployments use: password and database index, TLS, Redis Sentinel.
Each against a private Redis of its own; the server must really use it (keys appear there)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support import PrivateRedis, Server, free_port

pytestmark = pytest.mark.e2e


async def _streams_through(server: Server) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        ready = (await http.get("/ready")).json()
        assert ready["status"] == "ok" and ready["redis"] == "up", ready
    client = get_client(url=server.url)
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"],
            "counter",
            input={"steps": 3},
            stream_mode="custom",
            on_completion="keep",
        )
    ]
    assert [p.data["tick"] for p in parts if p.event == "custom"] == [1, 2, 3]
    return parts[0].data["run_id"]


async def test_password_and_database_index() -> None:
    redis = PrivateRedis(password="s3cret").start()
    try:
        uri = f"redis://:s3cret@127.0.0.1:{redis.port}/3"
        with Server("dev", env={"REDIS_URI": uri, "REDIS_KEY_PREFIX": "pw:"}) as server:
            run_id = await _streams_through(server)
        assert redis.client(db=3).exists(f"pw:run:{run_id}:events")
        assert not redis.client(db=0).exists(f"pw:run:{run_id}:events")
    finally:
        redis.stop()


@pytest.fixture
def tls_files() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="runyard-tls-"))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_tls(tls_files: Path) -> None:
    cert, key = tls_files / "cert.pem", tls_files / "key.pem"
    redis = PrivateRedis(
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
        tls={"ssl": True, "ssl_ca_certs": str(cert)},
    ).start()
    try:
        uri = f"rediss://127.0.0.1:{redis.port}/0?ssl_ca_certs={cert}"
        with Server("dev", env={"REDIS_URI": uri, "REDIS_KEY_PREFIX": "tls:"}) as server:
            run_id = await _streams_through(server)
        assert redis.client().exists(f"tls:run:{run_id}:events")
    finally:
        redis.stop()


def _start_sentinel(folder: Path, master_port: int) -> tuple[subprocess.Popen, int]:
    import redis as redis_lib

    port = free_port()
    conf = folder / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor themaster 127.0.0.1 {master_port} 1\n"
    )
    proc = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis_lib.Redis(port=port).execute_command(
                "SENTINEL", "get-master-addr-by-name", "themaster"
            ):
                return proc, port
        except redis_lib.RedisError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise TimeoutError("sentinel did not start")


async def test_sentinel() -> None:
    master = PrivateRedis().start()
    folder = Path(tempfile.mkdtemp(prefix="runyard-sentinel-"))
    sentinel, port = _start_sentinel(folder, master.port)
    try:
        uri = f"redis+sentinel://127.0.0.1:{port}/themaster/2"
        with Server("dev", env={"REDIS_URI": uri, "REDIS_KEY_PREFIX": "sen:"}) as server:
            run_id = await _streams_through(server)
        assert master.client(db=2).exists(f"sen:run:{run_id}:events")
    finally:
        sentinel.terminate()
        sentinel.wait(10)
        master.stop()
        shutil.rmtree(folder, ignore_errors=True)
