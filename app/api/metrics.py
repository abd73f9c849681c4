"""GET /metrics: Prometheus text format, every server process added up under Gunicorn."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from app.api.common import container
from app.container import Container
from app.observability import metrics

router = APIRouter(tags=["system"])


@router.get("/metrics", include_in_schema=False)
async def scrape(c: Container = Depends(container)) -> Response:
    await metrics.sample(c)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
