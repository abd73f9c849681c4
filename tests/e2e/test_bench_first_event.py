"""`python -m bench.first_event` times a stream's start step by step inside a real production
stack: the probes it injects reach the server's processes, see every step of every measured
stream, in the order a stream's start takes them, and no probe file is left behind."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.first_event import STEPS

ROOT = Path(__file__).resolve().parents[2]
RUNS = 30


def test_every_step_of_every_stream_is_timed_in_order() -> None:
    before = set(Path(tempfile.gettempdir()).glob("runyard-probes-*"))
    done = subprocess.run(
        [sys.executable, "-m", "bench.first_event", "--runs", str(RUNS), "--warmup", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    assert out.startswith(f"{RUNS} streams;"), out
    rows = re.findall(r"^\s*([\d.]+)\s+([\d.-]+)\s+([\d.]+)\s+(\w+)\s", out, re.MULTILINE)
    labels = [label for *_, label in rows]
    assert set(labels) == set(STEPS), out
    p50s = [float(p50) for p50, *_ in rows]
    assert p50s == sorted(p50s) and p50s[0] == 0.0, out
    # The order of a stream's start: the insert commits before anything runs, the run's graph
    # after the worker starts it, the event before its frame.
    at = {label: i for i, label in enumerate(labels)}
    assert at["insert"] < at["inserted"] < at["execute"] < at["graph"] < at["event"], out
    assert at["event"] < at["frame"], out
    assert "client, call to first custom event: p50" in out
    assert set(Path(tempfile.gettempdir()).glob("runyard-probes-*")) == before
