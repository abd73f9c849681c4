"""Liveness and server information."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app import __version__
from app.api.common import JSON, container
from app.container import Container

router = APIRouter()


@router.get("/ok")
async def ok() -> JSON:
    return JSON({"ok": True})


@router.get("/ready")
async def ready(c: Container = Depends(container)) -> JSON:
    """Readiness: 200 `ok`, 200 `degraded` (Redis down: workers poll Postgres, streams follow
    Postgres), 503 `down` (Postgres unreachable: nothing can be accepted)."""
    postgres = await c.db.ping()
    redis = await c.broker.ping()
    if not postgres:
        status, code = "down", 503
    elif not redis:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {
        "status": status,
        "postgres" if c.db.is_postgres else "sqlite": "up" if postgres else "down",
        c.broker.kind: "up" if redis else "down",
        "mode": "polling" if not redis else "push",
    }
    return JSON(body, status_code=code)


@router.get("/info")
async def info(c: Container = Depends(container)) -> JSON:
    return JSON(
        {
            "version": __version__,
            "server": "runyard",
            "flags": {"assistants": True, "crons": False, "langsmith": False},
            "storage": "postgres" if c.db.is_postgres else "sqlite",
            "broker": c.broker.kind,
            "broker_healthy": c.broker.healthy,
        }
    )
