"""ASGI guards in front of every route: API keys and a request-body size limit.

Pure ASGI (not BaseHTTPMiddleware) so SSE responses stream through untouched.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from app import serde

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/ok", "/ui", "/ui/"})
# The dashboard's static files hold no data; its data endpoints (/ui/api/...) stay guarded.
OPEN_PREFIXES = ("/ui/static/",)


async def _reject(send: Send, status: int, detail: str, headers: list | None = None) -> None:
    body = serde.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _bearer(authorization: bytes | None) -> bytes | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip() or None


class ApiKeyGuard:
    """Header `x-api-key` (what langgraph-sdk sends), `Authorization: Bearer` (what MCP clients
    send), or `?api_key=` for EventSource, which cannot set headers. /ok stays open for
    liveness probes, and the dashboard's page and static files so that a browser can load it
    and then ask for the key."""

    def __init__(
        self, app: ASGIApp, keys: frozenset[str], open_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.open_paths = open_paths  # more paths without a key, e.g. /metrics if public

    def _allowed(self, given: bytes | None) -> bool:
        return given is not None and any(hmac.compare_digest(given, k) for k in self.keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or _is_open(path)
            or path in self.open_paths
        ):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key")
        if given is None:
            given = _bearer(headers.get(b"authorization"))
        if given is None and scope.get("query_string"):
            values = parse_qs(scope["query_string"].decode()).get("api_key")
            given = values[0].encode() if values else None
        if not self._allowed(given):
            return await _reject(
                send, 401, "Missing or invalid API key (header x-api-key or Authorization: Bearer)"
            )
        return await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        too_large = f"Request body larger than {self.max_bytes} bytes"
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                return await _reject(send, 413, too_large)
            # The HTTP parser reads no more than the declared length: nothing to count, and
            # every message of the response (each event of a stream) goes out unwrapped.
            return await self.app(scope, receive, send)
        if b"transfer-encoding" not in headers:  # neither length nor chunks: no body at all
            return await self.app(scope, receive, send)
        # Chunked: read the body first, up to the limit, then hand it over. Counting it as the
        # route reads it instead would raise inside the route's own body parsing, which
        # answers 400 for any failure there.
        parts: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            parts.append(message.get("body", b""))
            received += len(parts[-1])
            if received > self.max_bytes:
                return await _reject(send, 413, too_large)
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
