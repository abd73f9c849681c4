"""A migrated database per backend: Postgres (this session's own) and a SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from app.settings import Settings
from app.store.db import Database
from app.store.tables import runs, threads
from tests.support import postgres_database


@pytest.fixture(scope="session")
def own_pg_uri() -> Iterator[str]:
    """Not the session's shared database: servers of the e2e tests claim runs from that one."""
    with postgres_database() as uri:
        yield uri


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
async def db(request: pytest.FixtureRequest, tmp_path_factory) -> AsyncIterator[Database]:
    if request.param == "postgres":
        uri = request.getfixturevalue("own_pg_uri")
        url = Settings(DATABASE_URI=uri).sqlalchemy_url
    else:
        path: Path = tmp_path_factory.mktemp("sqlite") / "runyard.db"
        url = f"sqlite+aiosqlite:///{path}"
    database = Database(url, pool_size=20)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
async def clean_db(db: Database) -> Database:
    async with db.begin() as conn:
        await conn.execute(delete(runs))
        await conn.execute(delete(threads))
    return db


@pytest.fixture(scope="module")
async def pg(own_pg_uri: str) -> AsyncIterator[Database]:
    """Postgres alone, for what only Postgres does (its one-statement inserts)."""
    database = Database(Settings(DATABASE_URI=own_pg_uri).sqlalchemy_url, pool_size=2)
    await database.migrate()
    yield database
    await database.dispose()
