"""What a scenario is: a stack it needs, a warm-up, one measured repetition, and targets."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.measure import Measurement
from bench.servers import FLOOR, REFERENCE, SHAPES, Stack, StackSpec


@dataclass(frozen=True)
class Context:
    stack: Stack
    quick: bool


@dataclass(frozen=True)
class Target:
    """A figure's current goal: met (PASS) or not (MISS). A MISS does not fail the bench."""

    figure: str
    op: str  # ">=" or "<="
    value: float
    full_size_only: bool = False  # the quick size is not comparable with the goal

    def label(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:g}"

    def met(self, value: float) -> bool:
        compare = operator.ge if self.op == ">=" else operator.le
        return bool(compare(value, self.value))


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    measure: Callable[[Context], Awaitable[Measurement]]
    # Unmeasured runs first (imports, pools, caches); its check failures still count.
    warmup: Callable[[Context, Measurement], Awaitable[None]] | None = None
    # The reference server and the floor are measured where a scenario needs nothing of a
    # Runyard stack.
    shapes: tuple[str, ...] = (*SHAPES, REFERENCE, FLOOR)
    stack: Callable[[str, bool], StackSpec] = lambda shape, quick: StackSpec()
    targets: tuple[Target, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    how: str = ""  # one line: how the figures are measured


def token() -> str:
    """A fresh value a run carries through, so its output and events can be told apart."""
    return uuid.uuid4().hex
