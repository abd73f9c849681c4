"""What every route module shares: the JSON response class and the container dependency."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from app import serde
from app.container import Container


class JSON(JSONResponse):
    """orjson-encoded; datetimes as ISO 8601 with offset, as LangGraph sends them."""

    def render(self, content: Any) -> bytes:
        return serde.dumps(content)


def container(request: Request) -> Container:
    return request.app.state.container
