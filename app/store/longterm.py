"""Long-term memory: LangGraph's own stores, Postgres in production and SQLite embedded.

The same store object serves the /store API and the graphs (a node's `store` parameter,
`get_store()`), so what a run writes is what the API reads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from langgraph.store.base import BaseStore, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from app.agents.config import ConfigError
from app.store.pg_pool import open_pool

log = logging.getLogger("runyard.store")

# LangGraph's own fallback when a TTL config names no sweep interval.
DEFAULT_SWEEP_MINUTES = 5
# A server process's store pool: graphs' store calls are batched, API calls are short.
STORE_POOL_SIZE = 5

_TTL_KEYS = ("refresh_on_read", "omit_expired", "default_ttl", "sweep_interval_minutes")
_RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# What LangGraph's SQLite store lets into its SQL as a JSON path.
_SQLITE_FILTER_KEY = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class StoreOptions:
    """The `store` section of langgraph.json, as far as Runyard honours it."""

    ttl: TTLConfig
    semantic_requested: bool = False

    @property
    def sweep_minutes(self) -> float:
        return float(self.ttl.get("sweep_interval_minutes") or DEFAULT_SWEEP_MINUTES)


def read_store_options(config_path: Path) -> StoreOptions:
    """Parse `{"store": {"ttl": {...}, "index": {...}}}`; a wrong section stops start-up."""
    raw = orjson.loads(config_path.read_bytes())
    section = raw.get("store") if isinstance(raw, dict) else None
    if section is None:
        return StoreOptions(ttl=_default_ttl())
    if not isinstance(section, dict):
        raise ConfigError(f'"store" in {config_path} must be an object')
    ttl = _read_ttl(section.get("ttl"), config_path)
    index = section.get("index")
    if index is not None and not isinstance(index, dict):
        raise ConfigError(f'"store.index" in {config_path} must be an object')
    return StoreOptions(ttl=ttl, semantic_requested=bool(index))


def _default_ttl() -> TTLConfig:
    # Never empty: LangGraph's stores skip the sweeper for an empty config, and then items
    # put with their own `ttl` would never be deleted.
    return TTLConfig(refresh_on_read=True)


def _read_ttl(value: Any, config_path: Path) -> TTLConfig:
    if value is None:
        return _default_ttl()
    where = f'"store.ttl" in {config_path}'
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    ttl = _default_ttl()
    for name in ("refresh_on_read", "omit_expired"):
        if name in value:
            if not isinstance(value[name], bool):
                raise ConfigError(f"{where}: {name} must be true or false")
            ttl[name] = value[name]  # type: ignore[literal-required]
    for name in ("default_ttl", "sweep_interval_minutes"):
        number = value.get(name)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ConfigError(f"{where}: {name} must be a number of minutes")
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{where}: {name} must be more than 0 minutes")
        ttl[name] = number  # type: ignore[literal-required]
    unknown = set(value) - set(_TTL_KEYS)
    if unknown:
        # Warn, don't fail: a config written for a newer LangGraph server should still start.
        log.warning("%s: ignoring unknown setting(s) %s", where, ", ".join(sorted(unknown)))
    return ttl


def _numeric_range(op: str, value: Any) -> str | None:
    """The SQL operator when `op` compares with a number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return _RANGE_OPS.get(op)


# Range filters on numbers ({"score": {"$gt": 5}}) match numeric fields only, compared as
# numbers, on both backends. As shipped, the Postgres store compares them as text (10 < 9)
# and the SQLite one casts every field to a number ("high" becomes 0).


class _PostgresStore(AsyncPostgresStore):
    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list]:
        symbol = _numeric_range(op, value)
        if symbol is None:
            return super()._get_filter_condition(key, op, value)
        # CASE, not AND: Postgres may evaluate AND's operands in any order, and the cast
        # fails on a field that holds a string.
        return (
            f"CASE WHEN jsonb_typeof(value->%s) = 'number' "
            f"THEN (value->>%s)::numeric {symbol} %s::numeric ELSE false END",
            [key, key, value],
        )


class _SqliteStore(AsyncSqliteStore):
    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list]:
        symbol = _numeric_range(op, value)
        if symbol is None:
            return super()._get_filter_condition(key, op, value)
        # The key goes into the SQL text, as in the stock store: same check first.
        if not _SQLITE_FILTER_KEY.fullmatch(key):
            raise ValueError(f"Invalid filter key: {key!r}")
        path = f"'$.{key}'"
        return (
            f"(json_type(value, {path}) IN ('integer', 'real') "
            f"AND json_extract(value, {path}) {symbol} ?)",
            [value],
        )


class LongTermStore:
    """Owns the store and its connections for the life of a process."""

    def __init__(
        self,
        *,
        postgres_uri: str | None,
        sqlite_path: Path,
        pool_size: int,
        options: StoreOptions | None = None,
    ) -> None:
        self._postgres_uri = postgres_uri
        self._sqlite_path = sqlite_path
        self._pool_size = pool_size
        self.options = options or StoreOptions(ttl=_default_ttl())
        self._pool: Any = None
        self._sqlite: Any = None
        self.store: BaseStore | None = None

    async def open(self) -> BaseStore:
        if self.options.semantic_requested:
            log.warning(
                '"store.index" in the config is ignored: semantic search is not supported, '
                "a search's `query` is answered by its namespace and filter alone"
            )
        ttl = self.options.ttl
        if self._postgres_uri:
            self._pool = await open_pool(self._postgres_uri, self._pool_size)
            self.store = _PostgresStore(self._pool, ttl=ttl)
        else:
            import aiosqlite

            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            # The store issues its own BEGIN/COMMIT, so the connection must not.
            self._sqlite = await aiosqlite.connect(str(self._sqlite_path), isolation_level=None)
            await self._sqlite.execute("PRAGMA journal_mode=WAL")
            await self._sqlite.execute("PRAGMA busy_timeout=30000")
            self.store = _SqliteStore(self._sqlite, ttl=ttl)
        return self.store

    async def setup(self) -> None:
        """Create or upgrade the store's tables; run under the migration lock."""
        assert self.store is not None
        await self.store.setup()  # type: ignore[attr-defined]

    async def start(self) -> None:
        """Start deleting expired items in the background, as LangGraph's stores do."""
        assert self.store is not None
        await self.store.start_ttl_sweeper(self.options.sweep_minutes)  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.stop_ttl_sweeper(timeout=1)  # type: ignore[attr-defined]
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
        if self._sqlite is not None:
            with contextlib.suppress(Exception):
                await self._sqlite.close()
