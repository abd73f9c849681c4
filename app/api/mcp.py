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


class PostOnly:
    """Stateless, the server never speaks first and has no session to end: no stream for a GET
    to hold open, no DELETE to take (MCP allows a 405 for both)."""

    def __init__(self, transport: StreamableHTTPASGIApp) -> None:
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            return await self.transport(scope, receive, send)
        response = JSONResponse(
            {"detail": "Method Not Allowed: send MCP messages with POST"},
            status_code=405,
            headers={"Allow": "POST"},
        )
        await response(scope, receive, send)


def mount(app: FastAPI) -> StreamableHTTPSessionManager:
    """Serve MCP on `app` at /mcp (and /mcp/, without a redirect). The returned manager must
    run (`async with serving(manager)`) for as long as the app serves."""

    def container() -> Container:
        return app.state.container

    async def list_tools(_: Any, __: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[_as_mcp(t) for t in await tools.list_tools(container())]
        )

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
    endpoint = PostOnly(StreamableHTTPASGIApp(manager))
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
