"""The SSE response's send path: without a send timeout, frames go straight to the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from sse_starlette import EventSourceResponse

from app.stream.sse import sse_response


async def _frames() -> AsyncIterator[bytes]:
    yield b"event: metadata\ndata: {}\n\n"
    yield b"event: values\ndata: {}\nid: 1\n\n"


def test_the_library_still_sends_through_the_overridden_method() -> None:
    # If sse-starlette stops calling this, the override is dead code and every send pays for
    # a cancel scope again.
    assert callable(getattr(EventSourceResponse, "_send_with_timeout", None))


async def _serve(response: EventSourceResponse, send: Any) -> None:
    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        return {}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await response(scope, receive, send)


async def test_frames_reach_the_server_without_a_cancel_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, Any]] = []
    scopes = 0
    real = anyio.move_on_after

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal scopes
        scopes += 1
        return real(*args, **kwargs)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    monkeypatch.setattr(anyio, "move_on_after", counting)
    await _serve(sse_response(_frames()), send)
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
    assert bodies == [b"event: metadata\ndata: {}\n\n", b"event: values\ndata: {}\nid: 1\n\n"]
    assert scopes == 0


async def test_a_failed_send_marks_the_response_interrupted() -> None:
    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client gone")

    response = sse_response(_frames())
    with pytest.raises(BaseException):  # noqa: B017 - anyio may wrap it in a group
        await _serve(response, send)
    assert response._send_interrupted  # noqa: SLF001
