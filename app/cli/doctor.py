"""`runyard doctor`: checks the setup this command runs in, one line per check as it goes.

Every check ends OK, WARN or FAIL (SKIP when an earlier failure makes it meaningless); a
check that is not OK says what is wrong and how to fix it. Any FAIL makes the exit code 1.
Network checks give up after a few seconds, so an unreachable host is reported, not waited on.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from app.cli.common import (
    CONNECT_TIMEOUT_SECS,
    apply_config_path,
    database_label,
    describe_error,
    embedded_db_path,
    settings_errors,
)
from app.cli.server import default_workers, serve_preflight

if TYPE_CHECKING:
    from app.agents.config import GraphSpec, ProjectConfig
    from app.settings import Settings
    from app.store.schema import SchemaState

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
MIGRATE_FIX = "run `runyard migrate` (the server also migrates when it starts)"
# Redis 6 reads BLPOP's timeout as seconds with a fraction; the wake-up wait relies on that.
MIN_REDIS_MAJOR = 6
GRAPH_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
# Keys counted under the prefix before reporting "at least N": enough to tell in use or not.
KEY_SCAN_LIMIT = 10_000


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('s') else 's'}"


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str
    fix: str | None = None


class Report:
    """Prints each check the moment it is known, and counts them."""

    def __init__(self) -> None:
        self.counts = {OK: 0, WARN: 0, FAIL: 0, SKIP: 0}

    def add(self, check: Check) -> None:
        self.counts[check.status] += 1
        first, *rest = check.detail.splitlines() or [""]
        print(f"{check.status:<5} {check.name}: {first}", flush=True)
        for line in rest:
            print(f"      {line}", flush=True)
        if check.fix and check.status != OK:
            print(f"      fix: {check.fix}", flush=True)

    def summary(self) -> str:
        parts = [f"{n} {s}" for s, n in self.counts.items() if n or s != SKIP]
        return "runyard doctor: " + ", ".join(parts)


# -- settings -----------------------------------------------------------------------------


def check_settings(report: Report) -> Settings | None:
    from app.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        report.add(
            Check(
                FAIL,
                "settings",
                "invalid:\n" + "\n".join(settings_errors(exc)),
                "correct them in the environment or .env; docs/configuration.md lists every "
                "setting with its allowed values",
            )
        )
        return None
    dotenv = Path(".env").resolve()
    source = f"the environment and {dotenv}" if dotenv.is_file() else "the environment"
    report.add(Check(OK, "settings", f"valid (read from {source})"))
    if not isinstance(logging.getLevelName(settings.LOG_LEVEL.upper()), int):
        report.add(
            Check(
                FAIL,
                "settings",
                f"LOG_LEVEL={settings.LOG_LEVEL} is not a logging level",
                "use DEBUG, INFO, WARNING or ERROR",
            )
        )
    heartbeat, lease = settings.BG_JOB_HEARTBEAT_SECS, settings.BG_JOB_LEASE_SECS
    if heartbeat >= lease:
        report.add(
            Check(
                FAIL,
                "settings",
                f"BG_JOB_HEARTBEAT_SECS={heartbeat:g} is not below BG_JOB_LEASE_SECS={lease:g}: "
                "leases would expire between heartbeats and running runs be taken away",
                "keep the heartbeat at most a third of the lease (defaults: 5 and 30)",
            )
        )
    elif heartbeat * 2 > lease:
        report.add(
            Check(
                WARN,
                "settings",
                f"BG_JOB_HEARTBEAT_SECS={heartbeat:g} is more than half of "
                f"BG_JOB_LEASE_SECS={lease:g}: one slow heartbeat loses a running run's lease",
                "keep the heartbeat at most a third of the lease (defaults: 5 and 30)",
            )
        )
    uri = settings.DATABASE_URI
    if uri and not uri.startswith(("postgresql", "postgres://")):
        report.add(
            Check(
                WARN,
                "settings",
                f"DATABASE_URI starts with {uri.split(':', 1)[0]}:// but Runyard expects Postgres",
                "use postgresql://user:password@host:5432/dbname, or leave it unset for the "
                "embedded SQLite store",
            )
        )
    return settings


# -- config -------------------------------------------------------------------------------


def check_config(report: Report, path: str) -> None:
    from app.agents.config import ConfigError, apply_environment, load_config
    from app.store.longterm import read_store_options

    try:
        config = load_config(path)
    except ConfigError as exc:
        report.add(
            Check(
                FAIL,
                "config",
                str(exc),
                'point --config or RUNYARD_CONFIG at a langgraph.json with a "graphs" object',
            )
        )
        return
    report.add(Check(OK, "config", f"{config.path}: {len(config.graphs)} graphs"))
    try:
        options = read_store_options(config.path)
    except ConfigError as exc:
        report.add(Check(FAIL, "config store", str(exc), 'correct or remove the "store" section'))
    else:
        if options.semantic_requested:
            report.add(
                Check(
                    WARN,
                    "config store",
                    '"store.index" is ignored: semantic search is not supported',
                    'remove "index" from the "store" section',
                )
            )
    _check_dependencies(report, config)
    _check_env(report, config)
    apply_environment(config)
    for graph_id, spec in config.graphs.items():
        report.add(_check_graph(config, graph_id, spec))


def _check_dependencies(report: Report, config: ProjectConfig) -> None:
    problems: list[str] = []
    folders = packages = 0
    for dep in config.dependencies:
        if dep.startswith((".", "/", "~")) or "/" in dep or os.sep in dep:
            folders += 1
            candidate = (config.root / dep).expanduser().resolve()
            if not candidate.exists():
                problems.append(f'"{dep}": {candidate} does not exist')
            elif not candidate.is_dir():
                problems.append(f'"{dep}": {candidate} is a file; only folders go on sys.path')
            continue
        packages += 1
        match = PACKAGE_NAME.match(dep)
        name = match.group(0) if match else dep
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f'"{dep}": package {name} is not installed in this environment')
    if problems:
        report.add(
            Check(
                WARN,
                "config dependencies",
                "\n".join(problems),
                "Runyard installs nothing: pip install packages into the server's environment; "
                "folder paths are relative to the config file",
            )
        )
    else:
        report.add(
            Check(
                OK,
                "config dependencies",
                f"{plural(folders, 'folder')} and {plural(packages, 'package')} present",
            )
        )


def _check_env(report: Report, config: ProjectConfig) -> None:
    from app.settings import Settings

    if not config.env:
        return
    bad = [k for k in config.env if not ENV_NAME.match(k)]
    ours = [k for k in config.env if k in Settings.model_fields]
    shadowed = [k for k in config.env if k in os.environ and k not in ours]
    if bad:
        report.add(
            Check(
                WARN,
                "config env",
                f"not valid variable names: {', '.join(bad)}",
                "use letters, digits and _ (not starting with a digit)",
            )
        )
    if ours:
        report.add(
            Check(
                WARN,
                "config env",
                f"sets Runyard settings ({', '.join(ours)}): the config's env reaches the graphs "
                "only, Runyard reads its settings before the config",
                "set them in the server's environment or .env instead",
            )
        )
    note = f"; the real environment wins for {', '.join(shadowed)}" if shadowed else ""
    report.add(Check(OK, "config env", f"{plural(len(config.env), 'variable')}{note}"))


def _check_graph(config: ProjectConfig, graph_id: str, spec: GraphSpec) -> Check:
    from langgraph.pregel import Pregel

    from app.agents.config import ConfigError
    from app.agents.registry import load_graph

    name = f'graph "{graph_id}"'
    if not graph_id or len(graph_id) > 255 or "\x00" in graph_id:
        return Check(FAIL, name, "a graph id is 1 to 255 characters", 'rename it in "graphs"')
    try:
        target = load_graph(spec, config.root)
    except ConfigError as exc:
        return Check(FAIL, name, str(exc).removeprefix(f"{name}: "), _graph_fix(exc))
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises, name it
        return Check(FAIL, name, f"loading {spec.target} failed: {describe_error(exc)}")
    kind = "compiled graph" if isinstance(target, Pregel) else "factory"
    if not GRAPH_ID.match(graph_id):
        return Check(
            WARN,
            name,
            f"{kind} ({spec.target}); the id has characters other than letters, digits, _ . -",
            "rename it: graph ids appear in URLs such as /assistants/{id}",
        )
    return Check(OK, name, f"{kind} ({spec.target})")


def _graph_fix(exc: Exception) -> str:
    cause = exc.__cause__
    if isinstance(cause, ModuleNotFoundError):
        return (
            f"install {cause.name or 'the missing module'} into the server's environment, or "
            'add the folder that holds it to "dependencies"'
        )
    if cause is not None:
        return "the module raised while importing: run it with python to see the traceback"
    if "not found" in str(exc):
        return 'correct the path in "graphs" (relative to the config file)'
    if "has no" in str(exc):
        return 'correct the variable name after ":" in "graphs"'
    return "point the graph at a compiled graph, a StateGraph, or a function returning one"


# -- database -----------------------------------------------------------------------------


def _root_cause(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrappers."""
    seen = {id(exc)}
    while not isinstance(exc, TimeoutError):  # its cause is only the cancelled wait
        inner = getattr(exc, "orig", None) or exc.__cause__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner
    return exc


def _postgres_fix(exc: BaseException) -> str:
    kind = type(exc).__name__
    if kind == "InvalidCatalogNameError":
        return "create the database (createdb NAME): Runyard creates tables, not databases"
    if kind in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
        return "check the user and password in DATABASE_URI"
    if isinstance(exc, TimeoutError):
        return "check the host and port in DATABASE_URI, and that no firewall drops the traffic"
    if isinstance(exc, OSError):
        return "is Postgres running there? Check the host and port in DATABASE_URI"
    return "check DATABASE_URI"


async def check_database(report: Report, settings: Settings) -> None:
    if settings.embedded_db:
        await asyncio.to_thread(_check_sqlite, report, settings)
        return
    if not settings.sqlalchemy_url.startswith("postgresql"):
        report.add(Check(SKIP, "postgres", "DATABASE_URI is not a Postgres URI"))
        return
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from app.store.schema import schema_state

    label = database_label(settings)
    engine = create_async_engine(
        settings.sqlalchemy_url,
        poolclass=NullPool,
        connect_args={"timeout": CONNECT_TIMEOUT_SECS},
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECS + 2), engine.connect() as conn:
            version = (await conn.execute(text("SHOW server_version"))).scalar()
            limit = (await conn.execute(text("SHOW max_connections"))).scalar()
            used = (await conn.execute(text("SELECT count(*) FROM pg_stat_activity"))).scalar()
            state = await conn.run_sync(schema_state, settings.sqlalchemy_url)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        root = _root_cause(exc)
        report.add(Check(FAIL, "postgres", f"{label}: {describe_error(root)}", _postgres_fix(root)))
        report.add(Check(SKIP, "migrations", "database not reachable"))
        return
    finally:
        await engine.dispose()
    report.add(
        Check(
            OK,
            "postgres",
            f"{label}: PostgreSQL {str(version).split()[0]}, {used} of "
            f"max_connections={limit} connections in use",
        )
    )
    report.add(_migrations_check(state))


def _check_sqlite(report: Report, settings: Settings) -> None:
    from sqlalchemy import create_engine

    from app.store.schema import schema_state

    path = embedded_db_path(settings)
    if not path.exists():
        parent = next(p for p in path.parents if p.exists())
        if not os.access(parent, os.W_OK):
            report.add(
                Check(
                    FAIL,
                    "sqlite",
                    f"{path} cannot be created: {parent} is not writable",
                    "set RUNYARD_DATA_DIR to a writable folder",
                )
            )
            return
        report.add(
            Check(
                OK,
                "sqlite",
                f"{path} not created yet: `runyard dev` (or `runyard migrate`) creates it",
            )
        )
        return
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        report.add(
            Check(
                FAIL,
                "sqlite",
                f"{path} or its folder is not writable (SQLite writes -wal/-shm files beside it)",
                "fix the permissions, or set RUNYARD_DATA_DIR to a writable folder",
            )
        )
        return
    # Read-only: a check must not create or change anything.
    engine = create_engine(
        f"sqlite:///file:{path}?mode=ro&uri=true", connect_args={"timeout": CONNECT_TIMEOUT_SECS}
    )
    try:
        with engine.connect() as conn:
            state = schema_state(conn, f"sqlite:///{path}")
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        report.add(
            Check(
                FAIL,
                "sqlite",
                f"{path}: {describe_error(_root_cause(exc))}",
                "is it a Runyard database? Move it away to start afresh",
            )
        )
        return
    finally:
        engine.dispose()
    report.add(Check(OK, "sqlite", f"embedded database {path}"))
    report.add(_migrations_check(state))


def _migrations_check(state: SchemaState) -> Check:
    if not state.known:
        return Check(
            FAIL,
            "migrations",
            f"the database is at revision {state.current}, which this version does not know "
            f"(its head is {state.head}): a newer Runyard migrated it",
            "run that version or a newer one; Runyard does not migrate down",
        )
    if state.current is None:
        return Check(
            WARN,
            "migrations",
            f"empty database: no Runyard schema yet; {len(state.pending)} migrations up to "
            f"{state.head} to apply",
            MIGRATE_FIX,
        )
    if state.pending:
        return Check(
            WARN,
            "migrations",
            f"behind: at {state.current}, head is {state.head} "
            f"({len(state.pending)} to apply: {', '.join(state.pending)})",
            MIGRATE_FIX,
        )
    return Check(OK, "migrations", f"at head ({state.head})")


# -- redis --------------------------------------------------------------------------------


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def _redis_fix(exc: BaseException) -> str:
    kind = type(exc).__name__
    if kind in ("AuthenticationError", "AuthenticationWrongNumberOfArgsError"):
        return "check the password in REDIS_URI (redis://:PASSWORD@host:6379/0)"
    if "SENTINEL" in str(exc):
        return "the hosts of a redis+sentinel:// URI are the Sentinels (port 26379), not Redis"
    if kind == "MasterNotFoundError":
        return "check the sentinel hosts and the service name in REDIS_URI"
    if isinstance(exc, TimeoutError) or kind == "TimeoutError":
        return "check the host and port in REDIS_URI, and that no firewall drops the traffic"
    if "SSL" in kind or "ssl" in str(exc).lower():
        return "TLS: use rediss:// for a TLS port, redis:// for a plain one; see docs/scaling.md"
    return "is Redis running there? Check REDIS_URI; Runyard runs degraded (polling) without it"


async def check_redis(report: Report, settings: Settings) -> None:
    from app.broker.redis_url import RedisUriError, connect

    uri, prefix = settings.REDIS_URI, settings.REDIS_KEY_PREFIX
    if not uri:
        report.add(Check(OK, "redis", "not configured: embedded broker, single process only"))
        return
    label = _redact(uri)
    try:
        client = connect(uri)
    except (RedisUriError, ValueError) as exc:
        report.add(
            Check(
                FAIL,
                "redis",
                f"REDIS_URI={label}: {exc}",
                "use redis://[:password@]host:6379/0, rediss:// for TLS, or "
                "redis+sentinel://host1:26379,host2:26379/service_name[/db]",
            )
        )
        return
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECS):
            await client.ping()
            info = await client.info("server")
            channel = f"{prefix}control"
            listeners = dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0)
            keys = await _count_keys(client, prefix)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        report.add(Check(FAIL, "redis", f"{label}: {describe_error(exc)}", _redis_fix(exc)))
        return
    finally:
        await client.aclose()
    version = str(info.get("redis_version", "?"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major and major < MIN_REDIS_MAJOR:
        report.add(
            Check(
                FAIL,
                "redis",
                f"{label}: Redis {version} is too old (workers wait for wake-ups with "
                "sub-second BLPOP timeouts)",
                f"upgrade to Redis {MIN_REDIS_MAJOR} or newer",
            )
        )
    else:
        report.add(Check(OK, "redis", f"{label}: Redis {version}"))
    report.add(Check(OK, "redis prefix", _prefix_usage(prefix, listeners, keys)))


async def _count_keys(client: Any, prefix: str) -> int:
    count, cursor = 0, 0
    while True:
        cursor, batch = await client.scan(cursor=cursor, match=f"{prefix}*", count=1000)
        count += len(batch)
        if not cursor or count >= KEY_SCAN_LIMIT:
            return count


def _prefix_usage(prefix: str, listeners: int, keys: int) -> str:
    if not listeners and not keys:
        return f"{prefix!r} not in use yet (no keys, no server process connected)"
    shown = f"at least {keys}" if keys >= KEY_SCAN_LIMIT else str(keys)
    return (
        f"{prefix!r} in use: {plural(listeners, 'server process')} connected now, {shown} keys "
        "(another deployment on this Redis needs its own REDIS_KEY_PREFIX)"
    )


# -- processes ----------------------------------------------------------------------------


def check_processes(report: Report, settings: Settings, workers: int | None) -> None:
    assumed = workers is None
    if workers is None:
        workers = 1 if settings.embedded_db else default_workers()
    how = plural(workers, "server process")
    if assumed:
        command = "`runyard dev`" if workers == 1 else "`runyard serve`"
        how += f" ({command}'s default; --workers N checks another count)"
    problem = serve_preflight(workers, settings.REDIS_URI, settings.DATABASE_URI)
    if problem:
        report.add(Check(FAIL, "processes", f"{how}: {problem}"))
        return
    n_jobs = settings.N_JOBS_PER_WORKER
    if n_jobs == 0 and settings.embedded_db:
        # No other process can share the SQLite store: nothing would ever run.
        report.add(
            Check(
                FAIL,
                "processes",
                f"{how}: N_JOBS_PER_WORKER=0 (API only), and in the embedded mode no other "
                "process can execute its runs",
                "set N_JOBS_PER_WORKER above 0",
            )
        )
    elif n_jobs == 0:
        report.add(
            Check(
                WARN,
                "processes",
                f"{how}: N_JOBS_PER_WORKER=0 (API only): runs execute only in other processes "
                "on the same Postgres and Redis",
                "make sure such processes run, or set N_JOBS_PER_WORKER above 0",
            )
        )
    else:
        note = ""
        if settings.DATABASE_URI and not settings.REDIS_URI:
            note = "; without Redis, one server process only"
        report.add(
            Check(
                OK,
                "processes",
                f"{how} x N_JOBS_PER_WORKER={n_jobs}: {workers * n_jobs} runs at once{note}",
            )
        )


# -- the command --------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    apply_config_path(args.config)
    report = Report()
    print("runyard doctor: checking settings, config, database and Redis", flush=True)
    settings = check_settings(report)
    config_path = settings.RUNYARD_CONFIG if settings else os.environ.get("RUNYARD_CONFIG")
    check_config(report, config_path or "langgraph.json")
    if settings is None:
        for name in ("database", "redis", "processes"):
            report.add(Check(SKIP, name, "settings are invalid"))
    else:
        asyncio.run(_check_services(report, settings))
        check_processes(report, settings, args.workers)
    print(report.summary(), flush=True)
    return 1 if report.counts[FAIL] else 0


async def _check_services(report: Report, settings: Settings) -> None:
    await check_database(report, settings)
    await check_redis(report, settings)


def add_parser(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor", help="check config, settings, database and Redis; exit 1 on any FAIL"
    )
    doctor.add_argument("--config", default=None, help="langgraph.json (default ./langgraph.json)")
    doctor.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes `runyard serve` will run (default: serve's own default, or 1 "
        "in embedded mode)",
    )
    doctor.set_defaults(func=cmd_doctor)
