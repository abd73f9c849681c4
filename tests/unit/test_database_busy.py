"""A request that finds no database connection free in time gets a 503 the client can retry,
not a 500: the pools are capped (LANGGRAPH_POSTGRES_POOL_MAX_SIZE), so an overloaded server
queues for connections and may run out of patience."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg_pool
import pytest
import sqlalchemy.exc

from app.main import create_app
from app.settings import Settings


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 20 overflow 0 reached"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
    ],
    ids=["tables", "checkpointer"],
)
async def test_a_pool_timeout_is_a_503_with_retry_after(error: Exception, tmp_path: Path) -> None:
    app = create_app(Settings(RUNYARD_DATA_DIR=str(tmp_path)))

    async def exhausted() -> None:
        raise error

    app.add_api_route("/exhausted", exhausted)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://runyard") as client:
        r = await client.get("/exhausted")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "database is busy" in r.json()["detail"]
