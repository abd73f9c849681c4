"""Every scenario of the benchmark, in the order they run."""

from __future__ import annotations

from bench.scenarios.base import Context, Scenario, Target
from bench.scenarios.cancel import CANCEL
from bench.scenarios.runs import BACKGROUND, FALLBACK, WAIT
from bench.scenarios.streams import STREAM, STREAMS_100, STREAMS_1000

SCENARIOS: tuple[Scenario, ...] = (
    WAIT,
    STREAM,
    BACKGROUND,
    STREAMS_100,
    STREAMS_1000,
    CANCEL,
    FALLBACK,
)

__all__ = ["SCENARIOS", "Context", "Scenario", "Target", "select"]


def select(names: list[str] | None) -> list[Scenario]:
    """The scenarios named: exactly, or else by prefix (`streams` picks both stream sizes)."""
    if not names:
        return list(SCENARIOS)
    wanted: set[str] = set()
    for name in names:
        exact = [s.name for s in SCENARIOS if s.name == name]
        matches = exact or [s.name for s in SCENARIOS if s.name.startswith(name)]
        if not matches:
            known = ", ".join(s.name for s in SCENARIOS)
            raise ValueError(f"unknown scenario {name!r} (known: {known})")
        wanted.update(matches)
    return [s for s in SCENARIOS if s.name in wanted]
