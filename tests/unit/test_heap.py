"""The collector's settings a server process takes once it is ready."""

from __future__ import annotations

import subprocess
import sys

from app.heap import YOUNG_THRESHOLD

PROBE = """
import gc
import langgraph.graph  # something of the size a server imports
from app.heap import tune_collector
before = gc.get_threshold()
tune_collector()
print(gc.get_freeze_count(), *before, *gc.get_threshold())
"""


def test_startup_objects_are_frozen_and_young_ones_collected_less_often() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    frozen, before, after = int(out[0]), out[1:4], out[4:7]
    assert frozen > 10_000
    assert after == [str(YOUNG_THRESHOLD), *before[1:]]
