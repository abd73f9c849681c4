"""Property-based fuzzing of the HTTP API with Schemathesis, driven by the server's own
OpenAPI document (`GET /openapi.json`), against real server processes: the embedded mode
(`runyard dev`) and production (`runyard serve`: Gunicorn, 2 workers, Postgres and Redis).

The only property checked is `not_a_server_error`: whatever Schemathesis sends, valid or not
(positive and negative generation; its coverage phase of boundary and malformed inputs; then
at most `MAX_EXAMPLES` random cases per operation), the server must not answer 5xx. 4xx
answers and the shape of responses are not checked. Generation is deterministic (Hypothesis
derandomized, no example database, no deadline), and requests run one at a time, so a run
sends the same requests every time.

Schemathesis runs through its command line (`schemathesis run`), in a subprocess: its pytest
loader for fixtures (`schemathesis.pytest.from_fixture`) does not work with pytest 9.2, which
removed the `Node._nodeid` it writes. On a failure the assertion message is Schemathesis's
report: each distinct failing case with its status, response body and a curl command to
reproduce it. The server's log is `<server.workdir>/server.log` (kept with RUNYARD_TEST_KEEP=1).

Excluded, because they hold the connection open until a run ends (or stream):
- POST /threads/{thread_id}/runs/stream
- POST /threads/{thread_id}/runs/wait
- GET  /threads/{thread_id}/runs/{run_id}/stream
- GET  /threads/{thread_id}/runs/{run_id}/join
- POST /runs/stream
- POST /runs/wait
(every path ending in /stream, /join or /wait).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import BIN, Server

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 20
EXCLUDED_PATHS = r"(/stream|/join|/wait)$"
REQUEST_TIMEOUT_SECS = 10


def schemathesis_run(server: Server, workdir: Path) -> subprocess.CompletedProcess[str]:
    args = [
        str(BIN / "schemathesis"),
        "run",
        f"{server.url}/openapi.json",
        "--checks=not_a_server_error",
        "--phases=examples,coverage,fuzzing",
        "--mode=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--continue-on-failure",
        f"--exclude-path-regex={EXCLUDED_PATHS}",
        f"--request-timeout={REQUEST_TIMEOUT_SECS}",
        "--workers=1",
        "--warnings=off",
        "--no-color",
    ]
    # Its own folder, so no schemathesis.toml is picked up and nothing is left behind.
    return subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=100)


@pytest.mark.parametrize("server_fixture", ["embedded", "production"])
def test_no_server_errors(
    server_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: Server = request.getfixturevalue(server_fixture)
    result = schemathesis_run(server, tmp_path)
    assert result.returncode == 0, (
        f"schemathesis run failed against {server_fixture} ({server.url}); "
        f"server log: {server.log_path}\n{result.stdout}\n{result.stderr}"
    )
    tested = re.search(r"^\s*Tested: (\d+)", result.stdout, re.MULTILINE)
    assert tested and int(tested.group(1)) > 0, result.stdout
