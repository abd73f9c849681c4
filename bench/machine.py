"""Facts about the machine and software a run was measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.services import PG_HOST, PG_PORT, PG_USER, REDIS_URL

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_root() -> Path:
    """Where the servers' `app` package comes from: the first PYTHONPATH entry that holds one
    (a worktree of another commit, measured from this checkout), else this checkout."""
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and (Path(entry) / "app").is_dir():
            return Path(entry).resolve()
    return ROOT


def _git_commit() -> str | None:
    """The commit of the code under measurement."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=code_root(),
            capture_output=True,
            text=True,
        )
        return out.stdout.strip() or None
    return None


def _service_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"postgres": None, "redis": None}
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres") as c:
            row = c.execute("SHOW server_version").fetchone()
            versions["postgres"] = str(row[0]) if row else None
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        versions["redis"] = str(client.info("server")["redis_version"])
        client.close()
    return versions


def python_build(maps: str | None = None, config_args: str | None = None) -> str:
    """How the interpreter was built, which moves every figure: on one machine the same Python
    3.11 took 15-20% less CPU for a LangGraph run as Debian builds it (libpython inside the
    executable) than as pyenv does by default (a shared libpython, no profile-guided
    optimisation). `maps` and `config_args` default to this process's."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            maps = ""
    if config_args is None:
        config_args = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    if "libpython" not in maps:
        # Its CONFIG_ARGS may be those of a shared build made beside it (Debian's are).
        return f"{sys.executable}, libpython in the executable"
    opts = [flag for flag in ("--enable-optimizations", "--with-lto") if flag in config_args]
    return f"{sys.executable}, shared libpython, {' '.join(opts) or 'no --enable-optimizations'}"


def machine_facts() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "python_build": python_build(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
        "git_commit": _git_commit(),
        "versions": {
            "runyard": _version("runyard"),
            "langgraph-sdk": _version("langgraph-sdk"),
            "langgraph": _version("langgraph"),
            **_service_versions(),
        },
    }
