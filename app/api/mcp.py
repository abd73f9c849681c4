"""`/mcp`: the assistants as tools of a Model Context Protocol server, over MCP's Streamable
HTTP transport, stateless (no session outlives its request), with JSON answers. Any process
answers any request, and a tool call is a run like any other (see services/tools.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from app import __version__, serde
from app.container import Container
from app.services import tools

PATHS = ("/mcp", "/mcp/")
# Each tool runs a graph: it writes, and reaches whatever the graph reaches.
ANNOTATIONS = types.ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


def _as_mcp(tool: tools.Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.input_schema,
        annotations=ANNOTATIONS,
    )


def _result(outcome: tools.Outcome) -> types.CallToolResult:
    if outcome.error is not None:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=outcome.error)], is_error=True
        )
    text = serde.dumps_str(outcome.output)
    structured = outcome.output if isinstance(outcome.output, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured
    )


class Endpoint:
    """The transport behind two checks of its own. POST only: stateless, the server never
    speaks first and has no session to end, so no stream for a GET to hold open and no DELETE
    to take (MCP allows a 405 for both). And an `Origin`, which only browsers send, must be
    one of CORS_ALLOW_ORIGINS, as MCP requires against DNS rebinding: a page whose own name
    was made to point at this server is same-origin to the browser, and neither CORS nor a
    preflight stands in its way."""

    def __init__(self, transport: StreamableHTTPASGIApp, origins: list[str]) -> None:
        self.transport = transport
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = Headers(scope=scope).get("origin")
        if origin is not None and origin not in self.origins and "*" not in self.origins:
            response = JSONResponse(
                {"detail": f"Origin {origin[:200]} is not allowed (CORS_ALLOW_ORIGINS)"},
                status_code=403,
            )
        elif scope["method"] != "POST":
            response = JSONResponse(
                {"detail": "Method Not Allowed: send MCP messages with POST"},
                status_code=405,
                headers={"Allow": "POST"},
            )
        else:
            return await self.transport(scope, receive, send)
        await response(scope, receive, send)


def mount(app: FastAPI) -> StreamableHTTPSessionManager:
    """Serve MCP on `app` at /mcp (and /mcp/, without a redirect). The returned manager must
    run (`async with serving(manager)`) for as long as the app serves."""

    def container() -> Container:
        return app.state.container

    async def list_tools(
        _: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        cursor = params.cursor if params is not None else None
        try:
            page, following = await tools.list_tools(container(), cursor)
        except tools.BadCursor:
            raise MCPError(types.INVALID_PARAMS, f"Invalid cursor: {cursor}") from None
        return types.ListToolsResult(tools=[_as_mcp(t) for t in page], next_cursor=following)

    async def call_tool(_: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        c = container()
        try:
            tool = await tools.find(c, params.name)
        except tools.UnknownTool:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}") from None
        return _result(await tools.call(c, tool, dict(params.arguments or {})))

    server: Server[Any] = Server(
        "Runyard",
        version=__version__,
        instructions="Each tool runs one of this server's assistants on its arguments and "
        "answers the run's final state.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    manager = StreamableHTTPSessionManager(app=server, stateless=True, json_response=True)
    endpoint = Endpoint(StreamableHTTPASGIApp(manager), app.state.settings.cors_origins)
    for path in PATHS:
        app.add_route(path, endpoint, include_in_schema=False)
    return manager


@contextlib.asynccontextmanager
async def serving(manager: StreamableHTTPSessionManager) -> AsyncIterator[None]:
    """The manager running, in a task of its own: its task group must be left in the task
    that entered it, whichever tasks start and stop the app (a test fixture's are two)."""
    running = asyncio.Event()
    stop = asyncio.Event()

    async def hold() -> None:
        async with manager.run():
            running.set()
            await stop.wait()

    task = asyncio.create_task(hold(), name="runyard-mcp")
    started = asyncio.create_task(running.wait())
    await asyncio.wait((task, started), return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()  # it failed to start: say why
    try:
        yield
    finally:
        stop.set()
        await task
