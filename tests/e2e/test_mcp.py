"""The MCP endpoint through the official MCP client (`mcp`): the assistants as tools, a call
as a run on any process, and failures as tool errors."""

from __future__ import annotations

import json

import httpx
import mcp_types
import pytest
from langgraph_sdk import get_client
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import Server

pytestmark = pytest.mark.e2e

ACCEPT = {"accept": "application/json, text/event-stream"}


def tools_by_name(listed: mcp_types.ListToolsResult) -> dict[str, mcp_types.Tool]:
    return {tool.name: tool for tool in listed.tools}


async def test_every_assistant_is_a_tool(server: Server) -> None:
    sdk = get_client(url=server.url)
    named = await sdk.assistants.create("counter", name="my counter!", description="Counts.")
    twin = await sdk.assistants.create("sleeper", name="counter")
    try:
        async with Client(f"{server.url}/mcp") as client:
            tools = tools_by_name(await client.list_tools())
        counter = tools["counter"]
        assert counter.description == "Tool based on the counter assistant"
        assert counter.input_schema["type"] == "object"
        assert counter.input_schema["properties"]["steps"]["type"] == "integer"
        assert counter.annotations is not None and counter.annotations.read_only_hint is False
        # A chat graph asks for the text of one message, without the message classes.
        chat = tools["chat"].input_schema
        assert chat["properties"]["messages"]["type"] == "string"
        assert "$defs" not in chat
        # A name made fit for MCP; the assistant's own name is the title.
        mine = tools["my_counter"]
        assert (mine.title, mine.description) == ("my counter!", "Counts.")
        # A newer assistant of the same name is told apart by its id.
        twin_name = "counter_" + twin["assistant_id"].replace("-", "")[:8]
        assert twin_name in tools
        async with Client(f"{server.url}/mcp") as client:
            plain = await client.call_tool("counter", {"steps": 2})
            slept = await client.call_tool(twin_name, {"steps": 2, "delay": 0})
        assert plain.structured_content is not None and slept.structured_content is not None
        assert plain.structured_content["count"] == 2 and slept.structured_content["count"] == 2
    finally:
        for made in (named, twin):
            await sdk.assistants.delete(made["assistant_id"])


async def test_a_tool_call_is_a_run(server: Server) -> None:
    async with Client(f"{server.url}/mcp") as client:
        counted = await client.call_tool("counter", {"steps": 3})
        chatted = await client.call_tool("chat", {"messages": "hello"})
        paused = await client.call_tool("hitl", {"topic": "tides"})
    assert counted.is_error is False
    assert counted.structured_content == json.loads(counted.content[0].text)  # type: ignore[union-attr]
    assert counted.structured_content["count"] == 3
    assert chatted.structured_content is not None
    messages = chatted.structured_content["messages"]
    assert [(m["type"], m["content"]) for m in messages] == [
        ("human", "hello"),
        ("ai", "hello from the fake model"),
    ]
    # A run that stops at an interrupt answers it, as `runs.wait` does.
    assert paused.structured_content is not None
    question = paused.structured_content["__interrupt__"][0]["value"]["question"]
    assert question == "publish this?"


async def test_failures_are_tool_errors(server: Server) -> None:
    async with Client(f"{server.url}/mcp") as client:
        failed = await client.call_tool("boom", {"messages": "hi"})
        invalid = await client.call_tool("counter", {"steps": "three"})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("no-such-assistant", {})
    assert failed.is_error is True
    assert failed.content[0].text == "ValueError: the agent failed on purpose"  # type: ignore[union-attr]
    assert invalid.is_error is True
    assert invalid.content[0].text == (  # type: ignore[union-attr]
        "Invalid arguments at steps: 'three' is not of type 'integer'"
    )
    assert unknown.value.error.code == mcp_types.INVALID_PARAMS
    assert "no-such-assistant" in unknown.value.error.message


async def test_a_tool_call_crosses_processes(production: Server, api_only: Server) -> None:
    """Served by a process that runs nothing: the run executes in another one."""
    async with Client(f"{api_only.url}/mcp") as client:
        done = await client.call_tool("counter", {"steps": 2})
    assert done.structured_content is not None
    assert done.structured_content["count"] == 2
    assert done.structured_content["pid"] in production.worker_pids()


async def test_the_transport(embedded: Server) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient(base_url=embedded.url, timeout=30) as http:
        for path in ("/mcp", "/mcp/"):  # both, without a redirect
            r = await http.post(path, json=ping, headers=ACCEPT)
            assert r.status_code == 200, (path, r.text)
            assert r.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
        # A browser's page, unless CORS_ALLOW_ORIGINS lists it (DNS rebinding).
        r = await http.post("/mcp", json=ping, headers={**ACCEPT, "origin": "http://evil.test"})
        assert r.status_code == 403 and "http://evil.test" in r.json()["detail"]
        # Stateless: no stream to open, no session to end.
        assert (await http.get("/mcp", headers=ACCEPT)).status_code == 405
        r = await http.post("/mcp", json=ping, headers={"accept": "text/html"})
        assert r.status_code == 406
        r = await http.post(
            "/mcp", content=b"{", headers={**ACCEPT, "content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == mcp_types.PARSE_ERROR
