"""Every setting Runyard reads, in one place. Names follow the LangGraph server where one exists."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    DATABASE_URI: str | None = Field(
        default=None,
        description="Postgres URI (postgresql://user@host:5432/db). Unset: the embedded SQLite "
        "file under RUNYARD_DATA_DIR.",
    )
    REDIS_URI: str | None = Field(
        default=None,
        description="Redis URI (redis://host:6379/0). Unset: the in-process broker, which only "
        "works with a single server process.",
    )
    REDIS_KEY_PREFIX: str = Field(
        default="runyard:",
        description="Prefix of every Redis key and channel, so deployments can share one Redis.",
    )
    N_JOBS_PER_WORKER: int = Field(
        default=10, ge=0, description="Worker tasks per server process (0: API only)."
    )
    BG_JOB_TIMEOUT_SECS: float = Field(
        default=3600, gt=0, description="A run still going after this long ends as `timeout`."
    )
    BG_JOB_HEARTBEAT_SECS: float = Field(
        default=5,
        gt=0,
        description="How often a running run renews its lease and checks for cancel.",
    )
    BG_JOB_LEASE_SECS: float = Field(
        default=30, gt=0, description="A run whose lease is this old is taken back to `pending`."
    )
    BG_JOB_MAX_ATTEMPTS: int = Field(
        default=3,
        ge=1,
        description="Times a run may be lost with its worker before it ends `error`.",
    )
    BG_JOB_SHUTDOWN_GRACE_SECS: float = Field(
        default=30,
        ge=0,
        description="On SIGTERM, how long running runs may finish before they go back to "
        "`pending` for another process.",
    )
    WAKE_TIMEOUT_SECS: float = Field(
        default=1.0,
        gt=0,
        description="How often an idle process looks in Postgres for runs it was not woken "
        "for (lost wake-ups, delayed runs come due); a quarter of a second while Redis is down.",
    )
    LANGGRAPH_POSTGRES_POOL_MAX_SIZE: int = Field(
        default=20,
        ge=2,
        description="Most connections a server process opens in each of its two main Postgres "
        "pools (Runyard's tables; LangGraph's checkpointer). Below that, the pools follow "
        "N_JOBS_PER_WORKER.",
    )
    DATABASE_STARTUP_WAIT_SECS: float = Field(
        default=60,
        ge=0,
        description="How long a starting process waits for an unreachable database before it "
        "gives up.",
    )
    STATS_INTERVAL_SECS: float = Field(
        default=60, gt=0, description="How often each process logs a stats line."
    )
    CRON_CHECK_SECS: float = Field(
        default=5,
        gt=0,
        description="How often each process looks for crons that are due (a cron fires at most "
        "this late).",
    )
    WEBHOOK_MAX_ATTEMPTS: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Tries to deliver a run's webhook (exponential backoff from 0.5 s, at most "
        "30 s apart) before giving up.",
    )
    WEBHOOK_TIMEOUT_SECS: float = Field(
        default=10, gt=0, description="Time limit of one webhook delivery attempt."
    )
    STREAM_REPLAY_MAXLEN: int = Field(
        default=10_000, ge=100, description="Events kept per run for resuming streams."
    )
    STREAM_REPLAY_TTL_SECS: int = Field(
        default=3600, ge=60, description="How long a finished run's events stay resumable."
    )
    RUNYARD_CONFIG: str = Field(
        default="langgraph.json", description="Path of the langgraph.json-style config file."
    )
    RUNYARD_DATA_DIR: str = Field(
        default=".runyard", description="Folder of the embedded mode's SQLite files."
    )
    RUNYARD_API_KEYS: str = Field(
        default="",
        description="Comma-separated API keys. Set: every route but /ok needs header x-api-key "
        "or Authorization: Bearer (or ?api_key= for a browser's EventSource).",
    )
    CORS_ALLOW_ORIGINS: str = Field(
        default="", description="Comma-separated origins browsers may call from (* for any)."
    )
    MAX_REQUEST_BODY_BYTES: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Larger request bodies get a 413."
    )
    MAX_PENDING_RUNS: int = Field(
        default=100_000,
        ge=0,
        description="Past this many pending runs, creating one answers 503 with Retry-After "
        "(0: no cap).",
    )
    IDEMPOTENCY_KEY_TTL_SECS: int = Field(
        default=86_400, ge=60, description="How long an Idempotency-Key maps to its run."
    )
    LOG_LEVEL: str = Field(default="INFO", description="Python logging level.")
    LOG_JSON: bool = Field(
        default=False,
        description="Log lines as JSON objects (time, level, logger, message, pid, run_id, "
        "thread_id, ...) instead of text.",
    )
    METRICS_PUBLIC: bool = Field(
        default=False,
        description="Serve /metrics without an API key even when RUNYARD_API_KEYS is set.",
    )

    @property
    def api_keys(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.RUNYARD_API_KEYS.split(",") if k.strip())

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.CORS_ALLOW_ORIGINS.split(",") if o.strip()]

    # More connections than Postgres has cores to run them gains nothing: a burst of runs
    # opening one each (a backend forked, types introspected, statements prepared anew) cost
    # more than the same burst queueing for a few warm ones.
    @property
    def tables_pool_size(self) -> int:
        """Connections of the pool for Runyard's own tables: runs, threads, assistants."""
        return min(3 * (self.N_JOBS_PER_WORKER + 5), self.LANGGRAPH_POSTGRES_POOL_MAX_SIZE)

    @property
    def checkpointer_pool_size(self) -> int:
        return min(max(5, self.N_JOBS_PER_WORKER + 5), self.LANGGRAPH_POSTGRES_POOL_MAX_SIZE)

    @cached_property
    def data_dir(self) -> Path:
        return Path(self.RUNYARD_DATA_DIR)

    @property
    def embedded_db(self) -> bool:
        return not self.DATABASE_URI

    @cached_property
    def sqlalchemy_url(self) -> str:
        """SQLAlchemy's URL: asyncpg for Postgres; for the embedded file, aiosqlite's (the
        engine runs it through app/store/sqlite_inline.py, on the event loop)."""
        if not self.DATABASE_URI:
            return f"sqlite+aiosqlite:///{self.data_dir / 'runyard.db'}"
        uri = self.DATABASE_URI
        for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
            if uri.startswith(prefix):
                uri = "postgresql://" + uri[len(prefix) :]
        if uri.startswith("postgresql://"):
            return "postgresql+asyncpg://" + uri[len("postgresql://") :]
        return uri

    @cached_property
    def libpq_uri(self) -> str | None:
        """The plain libpq URI the LangGraph Postgres checkpointer (psycopg) connects with."""
        if not self.DATABASE_URI:
            return None
        return "postgresql://" + self.sqlalchemy_url.split("://", 1)[1]

    @property
    def checkpoint_sqlite_path(self) -> Path:
        return self.data_dir / "checkpoints.db"

    @property
    def store_sqlite_path(self) -> Path:
        return self.data_dir / "store.db"
