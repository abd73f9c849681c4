"""The benchmark's floor (bench/floor.py) answers what the bench's graphs would: every check the
scenarios make passes against it, so its figures are the client's cost alone, not a shortcut."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_check_passes_against_the_floor(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--shape",
            "floor",
            "--only",
            "wait,stream,background,streams_100",
            "--output",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    measured = {s["name"]: s for s in results["scenarios"]}
    assert set(measured) == {"wait", "stream", "background", "streams_100"}
    for name, scenario in measured.items():
        assert scenario["error_count"] == 0, (name, scenario["errors"])
    assert measured["streams_100"]["figures"]["events_lost"] == 0
    assert measured["streams_100"]["figures"]["events_received"] == 100 * 50
