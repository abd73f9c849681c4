"""Pure unit tests: no database, no Redis, no server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from app import serde
from app.agents.config import ConfigError, load_config
from app.agents.executor import build_command, normalize_stream_modes
from app.agents.registry import GraphRegistry, default_assistant_id
from app.broker.base import Event
from app.broker.memory import MemoryBroker
from app.cli import serve_preflight
from app.settings import Settings
from app.stream.relay import follow
from app.stream.sse import frame

GRAPHS = Path(__file__).resolve().parent.parent / "graphs" / "langgraph.json"


def test_serde_handles_agent_objects() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    out = serde.loads(serde.dumps({"m": AIMessage(content="hi"), "p": Point(1), "s": {1}}))
    assert out["m"]["content"] == "hi" and out["m"]["type"] == "ai"
    assert out["p"] == {"x": 1} and out["s"] == [1]


def test_settings_turn_database_uri_into_driver_urls() -> None:
    s = Settings(DATABASE_URI="postgres://u:p@h:5432/db")
    assert s.sqlalchemy_url == "postgresql+asyncpg://u:p@h:5432/db"
    assert s.libpq_uri == "postgresql://u:p@h:5432/db"
    embedded = Settings(DATABASE_URI=None, RUNYARD_DATA_DIR="/tmp/x")
    assert embedded.sqlalchemy_url == "sqlite+aiosqlite:////tmp/x/runyard.db"


def test_serve_refuses_several_workers_without_redis() -> None:
    problem = serve_preflight(2, None, "postgresql://x")
    assert problem is not None and "REDIS_URI" in problem
    assert serve_preflight(2, "redis://x", None) is not None
    assert serve_preflight(1, None, None) is None
    assert serve_preflight(4, "redis://x", "postgresql://x") is None


def test_config_file_loads_graphs_and_env(tmp_path: Path) -> None:
    config = load_config(GRAPHS)
    assert {"counter", "boom", "chat", "nested", "factory", "sleeper"} <= set(config.graphs)
    assert config.env == {"RUNYARD_TEST_ENV_FROM_CONFIG": "yes"}
    registry = GraphRegistry(config)
    registry.load()
    assert "counter" in registry and "nope" not in registry
    assert config.mcp_enabled


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"graphs": {}}', '"graphs"'),
        ('{"graphs": {"g": "file.py"}}', "lacks"),
        ('{"graphs": {"g": "./missing.py:graph"}}', "not found"),
        ('{"graphs": {"g": "./a.py:g"}, "http": []}', '"http"'),
        ('{"graphs": {"g": "./a.py:g"}, "http": {"disable_mcp": "yes"}}', "disable_mcp"),
    ],
)
def test_config_errors_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        GraphRegistry(load_config(path)).load()


def test_assistant_ids_are_stable_uuids() -> None:
    assert default_assistant_id("counter") == default_assistant_id("counter")
    assert default_assistant_id("counter") != default_assistant_id("boom")


def test_stream_modes_and_commands() -> None:
    assert normalize_stream_modes(None) == ["values"]
    assert normalize_stream_modes("updates") == ["updates"]
    assert normalize_stream_modes(["values", "values", "custom"]) == ["values", "custom"]
    command = build_command({"resume": 42, "update": [["k", 1]], "goto": "n"})
    assert command.resume == 42 and command.update == [("k", 1)] and command.goto == "n"
    assert build_command(None) is None


def test_sse_frame_carries_id_after_data() -> None:
    assert frame("values", b'{"a":1}', "7") == b'event: values\ndata: {"a":1}\nid: 7\n\n'
    assert frame("metadata", b"{}") == b"event: metadata\ndata: {}\n\n"


class _FakeRuns:
    def __init__(self, status: str) -> None:
        self.status = status

    async def get(self, run_id: str, thread_id: str | None = None) -> dict:
        return {"run_id": run_id, "status": self.status}


class _FakeContainer:
    def __init__(self, broker: MemoryBroker, status: str = "running") -> None:
        self.broker = broker
        self.runs = _FakeRuns(status)


async def test_relay_replays_then_follows_live_and_stops_at_end() -> None:
    broker = MemoryBroker(maxlen=100)
    for seq in (1, 2, 3):
        await broker.publish("r", Event(seq, "custom", b"%d" % seq))
    seen: list[int] = []

    async def consume() -> None:
        async for batch in follow(_FakeContainer(broker), "r", after_seq=1):  # type: ignore[arg-type]
            seen.extend(event.seq for event in batch)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    for seq in (4, 5):
        await broker.publish("r", Event(seq, "custom", b"%d" % seq))
    await broker.publish_end("r", 6, "success")
    await asyncio.wait_for(task, 5)
    assert seen == [2, 3, 4, 5]


async def test_relay_fills_a_gap_from_the_log() -> None:
    broker = MemoryBroker(maxlen=100)
    container = _FakeContainer(broker)
    sub_events: list[int] = []

    async def consume() -> None:
        async for batch in follow(container, "g"):  # type: ignore[arg-type]
            sub_events.extend(event.seq for event in batch)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    # Event 2 reaches the log but not the live channel (as when a relay message is lost).
    await broker.publish("g", Event(1, "custom", b"1"))
    broker._logs["g"].append(Event(2, "custom", b"2"))
    await broker.publish("g", Event(3, "custom", b"3"))
    await broker.publish_end("g", 4, "success")
    await asyncio.wait_for(task, 5)
    assert sub_events == [1, 2, 3]


async def test_relay_hands_a_burst_over_in_one_batch() -> None:
    """Events queued while the reader was busy go out together, in order, the end after them."""
    broker = MemoryBroker(maxlen=100)
    batches: list[list[int]] = []
    stream = follow(_FakeContainer(broker), "b", fresh=True)  # type: ignore[arg-type]
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.05)  # subscribed, waiting for the first event
    for seq in range(1, 6):
        await broker.publish("b", Event(seq, "custom", b"%d" % seq))
    await broker.publish_end("b", 6, "success")
    batches.append([e.seq for e in await asyncio.wait_for(first, 5)])
    async for batch in stream:
        batches.append([e.seq for e in batch])
    assert batches == [[1, 2, 3, 4, 5]]


def test_json_round_trip_of_run_kwargs() -> None:
    assert json.loads(serde.dumps_str({"a": [1, 2]})) == {"a": [1, 2]}
