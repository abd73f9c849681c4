"""Servers for end-to-end tests: the embedded mode, and production (Gunicorn, 2 workers)
plus an API-only process on the same Postgres and Redis, so cross-process paths are certain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import REDIS_URL, Server

# Crons are checked often enough that a test sees a due one fire within a second.
CRON_CHECK_SECS = "0.5"


@pytest.fixture(scope="session")
def production(pg_uri: str, redis_key_prefix: str) -> Iterator[Server]:
    env = {
        "DATABASE_URI": pg_uri,
        "REDIS_URI": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_key_prefix,
        "N_JOBS_PER_WORKER": "4",
        "CRON_CHECK_SECS": CRON_CHECK_SECS,
    }
    with Server("serve", env=env, workers=2) as server:
        yield server


@pytest.fixture(scope="session")
def api_only(production: Server, pg_uri: str, redis_key_prefix: str) -> Iterator[Server]:
    """Another process on the same Postgres and Redis that runs nothing itself: every run it
    accepts executes in `production`, so whatever it relays or cancels crosses processes."""
    env = {
        "DATABASE_URI": pg_uri,
        "REDIS_URI": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_key_prefix,
        "N_JOBS_PER_WORKER": "0",
        "CRON_CHECK_SECS": CRON_CHECK_SECS,
    }
    with Server("serve", env=env, workers=1) as server:
        yield server


@pytest.fixture(scope="session")
def embedded() -> Iterator[Server]:
    with Server("dev", env={"CRON_CHECK_SECS": CRON_CHECK_SECS}) as server:
        yield server


@pytest.fixture(scope="session", params=["embedded", "production"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)
