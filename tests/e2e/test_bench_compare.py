"""`python -m bench.compare` runs two checkouts side by side and reports their ratios; here
this checkout against itself in the embedded shape (both `runyard dev`, each on a data
directory of its own), at the smallest size: every output checked, every figure reported."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("load", ["thread", "stream"])
def test_this_checkout_against_itself_embedded(load: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--base", str(ROOT), "--shape", "embedded"]
        + ["--load", load, "--rounds", "1", "--runs", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "check failed" not in done.stdout
    ratio = re.search(r"^this/base\s+([\d.]+)\s+([\d.]+)", done.stdout, re.MULTILINE)
    assert ratio is not None, done.stdout
    # The same code on both sides: the CPU ratio is near one, whatever the machine does.
    assert 0.3 < float(ratio.group(1)) < 3.0, done.stdout
