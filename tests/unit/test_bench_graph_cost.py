"""bench.graph_cost: LangGraph's own cost of the benchmark's runs, measured without a server."""

from __future__ import annotations

import pytest

from bench.graph_cost import cli, iterator_run, langgraph_run, plain_run


async def test_both_runs_stream_every_event() -> None:
    # Three custom events and the values before and after the node: what the server relays.
    assert await langgraph_run("emit", 3, 0.0) == 5
    assert await iterator_run("emit", 3, 0.0) == 5
    assert await plain_run("emit", 3, 0.0) == 3
    assert await langgraph_run("one", 3, 0.0) == 2


def test_prints_cpu_per_run_and_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    cli(["--runs", "4", "--concurrency", "2", "--events", "3", "--delay", "0", "--repeat", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 runs of 'emit' (3 events, 0 ms apart), 2 at a time")
    rows = {line.rsplit(None, 3)[0]: line.split()[-3:] for line in lines[2:]}
    assert set(rows) == {"langgraph", "langgraph, iterator", "plain asyncio"}
    # CPU s has two decimals: a few small runs may show 0.00 there, not per event.
    assert float(rows["langgraph"][-1]) > 0 and float(rows["langgraph, iterator"][-1]) > 0
    assert all(float(value) >= 0 for value in rows["plain asyncio"])
