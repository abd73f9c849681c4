"""`runyard dev`, `runyard serve` (Gunicorn) and `runyard migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from app.cli.common import (
    CONNECT_TIMEOUT_SECS,
    apply_config_path,
    database_label,
    describe_error,
    fail,
    load_settings,
)

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.db import Database

DEFAULT_PORT = 2024


def default_workers() -> int:
    return max(2, os.cpu_count() or 1)


def serve_preflight(workers: int, redis_uri: str | None, database_uri: str | None) -> str | None:
    """Why `serve` must refuse to start, or None."""
    if workers > 1 and not redis_uri:
        return (
            f"--workers {workers} needs REDIS_URI: without Redis the broker lives inside one "
            "process, so workers could not relay streams or cancels to each other. Set REDIS_URI "
            "or use --workers 1 (or `runyard dev`)."
        )
    if workers > 1 and not database_uri:
        return (
            f"--workers {workers} needs DATABASE_URI (Postgres): the embedded SQLite store is for "
            "a single process. Set DATABASE_URI or use --workers 1."
        )
    return None


def _check_config() -> None:
    from app.agents.config import ConfigError, load_config

    try:
        load_config(load_settings().RUNYARD_CONFIG)
    except ConfigError as exc:
        fail(f"{exc} (`runyard doctor` checks the whole setup)")


def cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    apply_config_path(args.config)
    _check_config()
    if not load_settings().LOG_JSON:  # with JSON logs every output line is a JSON object
        print(f"runyard dev: http://{args.host}:{args.port}  (Ctrl+C to stop)", flush=True)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        loop="auto",
        http="auto",
        log_level="info",
        timeout_graceful_shutdown=5,
    )
    return 0


# Settings of newer Gunicorn releases than the oldest supported, left out where unknown.
OPTIONAL = frozenset({"control_socket_disable"})


def gunicorn_options(args: argparse.Namespace, grace_secs: float, log_level: str) -> dict[str, Any]:
    return {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "worker_class": "app.cli.worker.RunyardWorker",
        # Room for the drain (BG_JOB_SHUTDOWN_GRACE_SECS) and the hand-back after it.
        "graceful_timeout": int(grace_secs) + 10,
        "timeout": 120,
        "keepalive": 5,
        "accesslog": "-" if args.access_log else None,
        "errorlog": "-",
        "loglevel": log_level.lower(),
        "proc_name": "runyard",
        # Gunicorn 25.1+ opens a control socket at one path per user ($HOME/.gunicorn), for
        # `gunicornc` to scale, reload or stop it: every server of the user on the machine
        # would share that path, and Runyard's workers are not to be scaled from outside.
        "control_socket_disable": True,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from app.cli import worker as spreading
    from app.observability import gunicorn_hooks

    apply_config_path(args.config)
    _check_config()
    settings = load_settings()
    problem = serve_preflight(args.workers, settings.REDIS_URI, settings.DATABASE_URI)
    if problem:
        fail(problem)
    options = gunicorn_options(args, settings.BG_JOB_SHUTDOWN_GRACE_SECS, settings.LOG_LEVEL)
    # Metrics in multi-process mode (a fresh shared directory), JSON lines if LOG_JSON.
    options.update(gunicorn_hooks.server_options(json_logs=settings.LOG_JSON))
    metrics_child_exit = options["child_exit"]

    def child_exit(server: Any, worker: Any) -> None:
        spreading.child_exit(server, worker)
        metrics_child_exit(server, worker)

    # Each worker's share of the connections, for spreading them (app/cli/worker.py).
    options.update(pre_fork=spreading.pre_fork, child_exit=child_exit)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None and (key in self.cfg.settings or key not in OPTIONAL):
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from app.main import create_app

            return create_app()

    Server().run()
    return 0


class _PrintUpgrades(logging.Handler):
    """Alembic logs each revision it applies; show those lines as progress."""

    def emit(self, record: logging.LogRecord) -> None:
        # "Running upgrade 0001 -> 0002, <the revision's docstring>"
        message = record.getMessage()
        if not message.startswith("Running upgrade "):
            return
        step, _, about = message.removeprefix("Running upgrade ").partition(", ")
        target = step.rpartition("->")[2].strip()
        summary = about.splitlines()[0] if about else ""
        if len(summary) > 70:
            summary = summary[:69] + "…"
        print(f"  applying {target}: {summary}", flush=True)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    alembic_log = logging.getLogger("alembic.runtime.migration")
    handler = _PrintUpgrades()
    alembic_log.addHandler(handler)
    alembic_log.setLevel(logging.INFO)
    try:
        asyncio.run(_migrate(settings))
    finally:
        alembic_log.removeHandler(handler)
    print("runyard: database is at the latest schema", flush=True)
    return 0


def _step(message: str) -> None:
    print(message, flush=True)


async def _migrate(settings: Settings) -> None:
    from sqlalchemy import text

    from app.store.db import Database
    from app.store.schema import schema_state

    _step(f"database: {database_label(settings)}")
    db = Database(settings.sqlalchemy_url, pool_size=2)
    try:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECS), db.read() as conn:
                await conn.execute(text("SELECT 1"))
                state = await conn.run_sync(schema_state, settings.sqlalchemy_url)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            fail(f"cannot reach the database: {describe_error(exc)}")
        if not state.known:
            fail(
                f"the database is at revision {state.current}, which this version of Runyard "
                "does not know: a newer Runyard migrated it. Run that version (or newer)."
            )
        if state.pending:
            was = f"at {state.current}" if state.current else "empty database"
            _step(f"schema: {was}, head is {state.head}: {len(state.pending)} migrations to apply")
        else:
            _step(f"schema: at head ({state.head})")
        await _upgrade(settings, db)
    finally:
        await db.dispose()


async def _upgrade(settings: Settings, db: Database) -> None:
    from app.store.checkpoint import Checkpoints
    from app.store.longterm import LongTermStore

    checkpoints = Checkpoints(
        postgres_uri=settings.libpq_uri, sqlite_path=settings.checkpoint_sqlite_path, pool_size=2
    )
    longterm = LongTermStore(
        postgres_uri=settings.libpq_uri, sqlite_path=settings.store_sqlite_path, pool_size=2
    )
    await checkpoints.open()
    await longterm.open()

    async def setup_checkpoints() -> None:
        await checkpoints.setup()
        _step("checkpointer tables (LangGraph): up to date")

    async def setup_longterm() -> None:
        await longterm.setup()
        _step("long-term store tables (LangGraph): up to date")

    try:
        await db.migrate(
            setup_checkpoints,
            setup_longterm,
            on_wait=lambda: _step("waiting: another process holds the migration lock"),
        )
    finally:
        await longterm.close()
        await checkpoints.close()


def add_parsers(sub: Any) -> None:
    dev = sub.add_parser("dev", help="one process, embedded SQLite + in-memory broker by default")
    dev.add_argument("--config", default=None, help="langgraph.json (default ./langgraph.json)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=DEFAULT_PORT)
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="production: Gunicorn with Uvicorn workers")
    serve.add_argument("--config", default=None, help="langgraph.json (default ./langgraph.json)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--workers", type=int, default=default_workers())
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="upgrade the database schema to the latest version")
    migrate.set_defaults(func=cmd_migrate)
