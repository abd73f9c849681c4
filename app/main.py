"""create_app(): the FastAPI app. Its lifespan builds the container and starts the workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg_pool
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app.agents.config import ConfigError, ProjectConfig, apply_environment, load_config
from app.agents.registry import GraphRegistry
from app.api import assistants, crons, mcp, metrics, runs, store, system, threads
from app.api.guards import ApiKeyGuard, BodyLimit
from app.broker import create_broker
from app.container import Container
from app.heap import tune_collector
from app.observability import logs
from app.services.assistants import ensure_defaults
from app.services.errors import ServiceError
from app.settings import Settings
from app.store.checkpoint import Checkpoints
from app.store.db import Database
from app.store.longterm import STORE_POOL_SIZE, LongTermStore, read_store_options
from app.ui import router as ui
from app.worker.pool import WorkerPool

log = logging.getLogger("runyard")


def configure_logging(level: str, json: bool = False) -> None:
    logs.configure(level, json=json)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Read by create_app; read here when it could not be, to stop the start with its error.
    project = app.state.project or load_config(settings.RUNYARD_CONFIG)
    apply_environment(project)
    registry = GraphRegistry(project)
    registry.load()

    db = Database(settings.sqlalchemy_url, pool_size=settings.tables_pool_size)
    checkpoints = Checkpoints(
        postgres_uri=settings.libpq_uri,
        sqlite_path=settings.checkpoint_sqlite_path,
        pool_size=settings.checkpointer_pool_size,
    )
    longterm = LongTermStore(
        postgres_uri=settings.libpq_uri,
        sqlite_path=settings.store_sqlite_path,
        pool_size=STORE_POOL_SIZE,
        options=read_store_options(project.path),
    )
    # A process (re)started while Postgres restarts waits for it: a Gunicorn worker that
    # fails to boot stops the whole server.
    deadline = asyncio.get_running_loop().time() + settings.DATABASE_STARTUP_WAIT_SECS
    if db.is_postgres:
        await db.wait_reachable(deadline, log)
    saver = await checkpoints.open()
    memory = await longterm.open()

    async def setup_storage() -> None:
        await checkpoints.setup()
        await longterm.setup()

    await db.retrying_outage(lambda: db.migrate(setup_storage), deadline, log)
    await longterm.start()
    registry.bind(saver, memory)

    broker = create_broker(
        settings.REDIS_URI,
        prefix=settings.REDIS_KEY_PREFIX,
        maxlen=settings.STREAM_REPLAY_MAXLEN,
        ttl=settings.STREAM_REPLAY_TTL_SECS,
    )
    await broker.start()
    c = Container(
        settings=settings,
        db=db,
        broker=broker,
        registry=registry,
        checkpoints=checkpoints,
        longterm=longterm,
    )
    await db.retrying_outage(lambda: ensure_defaults(c), deadline, log)
    pool = WorkerPool(c, settings.N_JOBS_PER_WORKER)
    await pool.start()
    app.state.container = c
    app.state.pool = pool
    tune_collector()
    log.info(
        "runyard %s ready: %d graphs, %d workers, storage=%s, broker=%s",
        __version__,
        len(registry.graph_ids),
        settings.N_JOBS_PER_WORKER,
        "postgres" if db.is_postgres else "sqlite",
        broker.kind,
    )
    try:
        async with contextlib.AsyncExitStack() as serving:
            if app.state.mcp is not None:
                await serving.enter_async_context(mcp.serving(app.state.mcp))
            yield
    finally:
        await pool.stop(settings.BG_JOB_SHUTDOWN_GRACE_SECS)
        await broker.close()
        await longterm.close()
        await checkpoints.close()
        await db.dispose()


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


async def _database_busy(_: Request, exc: Exception) -> JSONResponse:
    # A pool at LANGGRAPH_POSTGRES_POOL_MAX_SIZE had no connection free within its timeout:
    # the server is overloaded, not broken, and the request can be sent again.
    log.warning("no database connection came free in time: %s", exc)
    return JSONResponse(
        {"detail": "The database is busy: no connection came free in time. Retry shortly."},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Details go to the log, not to the client: they may hold SQL and its parameters.
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


def _readable_config(settings: Settings) -> ProjectConfig | None:
    """The config file, which decides routes (`"http": {"disable_mcp": true}`); None when it
    cannot be read, which the lifespan then reports."""
    try:
        return load_config(settings.RUNYARD_CONFIG)
    except ConfigError:
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_JSON)
    app = FastAPI(title="Runyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _database_busy)
    app.add_exception_handler(psycopg_pool.PoolTimeout, _database_busy)
    app.add_exception_handler(Exception, _unexpected)
    # Routes are matched one by one in this order (a few microseconds each), so the routes
    # of every run come first. No runs route takes a crons path: where their paths could
    # meet (`/runs/{run_id}/...`, `/runs/crons/{cron_id}`) the methods differ.
    routers = (
        runs.router,
        crons.router,
        threads.router,
        assistants.router,
        store.router,
        system.router,
        ui.router,
        metrics.router,
    )
    for router in routers:
        app.include_router(router)
    app.state.project = project = _readable_config(settings)
    app.state.mcp = mcp.mount(app) if project is None or project.mcp_enabled else None
    # Outermost last: CORS answers preflights before the key check; the size limit runs first.
    if settings.api_keys:
        open_paths = frozenset({"/metrics"}) if settings.METRICS_PUBLIC else frozenset()
        app.add_middleware(ApiKeyGuard, keys=settings.api_keys, open_paths=open_paths)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "Content-Location",
                "Location",
                "X-Pagination-Total",
                "X-Pagination-Next",
            ],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    return app
