"""The MCP endpoint's tool listing, page by page, and the endpoint turned off in the config file
(the real app, in this process, embedded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.services import tools
from tests.support import GRAPHS, in_process

ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.fixture
async def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr(tools, "PAGE", 4)
    async with in_process(GRAPHS, tmp_path) as client:
        yield client


async def _list(http: httpx.AsyncClient, cursor: str | None) -> dict[str, Any]:
    params = {"cursor": cursor} if cursor is not None else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}
    r = await http.post("/mcp", json=body, headers=ACCEPT)
    assert r.status_code == 200, r.text
    return r.json()


async def test_tools_are_listed_page_by_page(http: httpx.AsyncClient) -> None:
    graphs = {
        a["graph_id"] for a in (await http.post("/assistants/search", json={"limit": 100})).json()
    }
    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        result = (await _list(http, cursor))["result"]
        assert len(result["tools"]) <= 4
        names += [t["name"] for t in result["tools"]]
        pages += 1
        cursor = result.get("nextCursor")
        if cursor is None:
            break
    assert sorted(names) == sorted(graphs) and len(names) == len(set(names))
    assert pages == -(-len(graphs) // 4)
    # A tool of any page can be called.
    call = {"name": names[-1], "arguments": {}}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}
    r = await http.post("/mcp", json=body, headers=ACCEPT)
    assert "result" in r.json(), r.text


async def test_a_cursor_not_given_out_is_refused(http: httpx.AsyncClient) -> None:
    error = (await _list(http, "not-a-cursor"))["error"]
    assert error["code"] == -32602 and "not-a-cursor" in error["message"]


async def test_the_config_file_can_turn_mcp_off(tmp_path: Path) -> None:
    config = orjson.loads(GRAPHS.read_bytes())
    config["graphs"] = {"counter": str(GRAPHS.parent / "agents.py") + ":counter"}
    config["dependencies"] = [str(GRAPHS.parent)]
    config["http"] = {"disable_mcp": True}
    path = tmp_path / "langgraph.json"
    path.write_bytes(orjson.dumps(config))
    async with in_process(path, tmp_path / "data") as http:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        assert (await http.post("/mcp", json=ping, headers=ACCEPT)).status_code == 404
        assert (await http.get("/ok")).status_code == 200
