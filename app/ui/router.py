"""The dashboard: static files under /ui, served as they are (no build step), and
`GET /ui/api/overview`, the queue and worker numbers the public API does not expose.

Everything else the page shows comes from the public API, so it sees what any client sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import func, select

from app.api.common import JSON, container
from app.container import Container
from app.store.runs import INFLIGHT
from app.store.tables import runs

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# A fixed allow-list, read once: no request path ever reaches the filesystem.
ASSETS = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}
# The page is small and changes with the server's version: always revalidate.
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["dashboard"])


def _asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail="Not found")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=NO_CACHE)


@router.get("/ui", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    # Relative, so the page's relative asset and API paths also work behind a path prefix.
    return RedirectResponse("ui/", status_code=307)


@router.get("/ui/", include_in_schema=False)
async def ui_index() -> FileResponse:
    return _asset("index.html")


@router.get("/ui/static/{name}", include_in_schema=False)
async def ui_static(name: str) -> FileResponse:
    return _asset(name)


async def _run_counts(c: Container) -> dict[str, int]:
    query = (
        select(runs.c.status, func.count())
        .where(runs.c.status.in_(INFLIGHT))
        .group_by(runs.c.status)
    )
    async with c.db.read() as conn:
        found = {status: int(n) for status, n in (await conn.execute(query)).all()}
    return {status: found.get(status, 0) for status in INFLIGHT}


@router.get("/ui/api/overview")
async def overview(request: Request, c: Container = Depends(container)) -> JSON:
    """Queue depth across all processes (from the database) and this process's worker pool.
    Under `runyard serve` each Gunicorn worker has its own pool: `workers` describes the
    process that answered."""
    pool = request.app.state.pool
    size = pool.n_jobs
    busy = pool.busy
    body: dict[str, Any] = {
        "runs": await _run_counts(c),
        "workers": {"size": size, "busy": busy, "idle": size - busy},
        "owner": c.owner_id,
    }
    return JSON(body)
