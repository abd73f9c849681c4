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


async def container(request: Request) -> Container:
    # async: FastAPI calls a plain `def` dependency in a worker thread, a thread hop (and
    # two event-loop wake-ups) per request for an attribute read.
    return request.app.state.container


def selected(row: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    """Only the fields a search's `select` asks for (all when none), in the row's order."""
    return row if not select else {k: v for k, v in row.items() if k in select}
