"""Session-wide real services. Each test session gets its own database and Redis prefix."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.support import LAST_WORDS, LIVE_SERVERS, LOG_TAIL, postgres_database, redis_prefix

os.environ.setdefault("LANGGRAPH_NO_VERSION_CHECK", "true")


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    with postgres_database() as uri:
        yield uri


@pytest.fixture(scope="session")
def redis_key_prefix() -> Iterator[str]:
    with redis_prefix() as prefix:
        yield prefix


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """A failed test's report ends with its servers' last log lines: what CI shows of a
    failure that happened inside a server process."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    words = list(LAST_WORDS)
    LAST_WORDS.clear()
    if not report.failed:
        return
    words += [(str(s), s.log()[-LOG_TAIL:]) for s in LIVE_SERVERS if s.log_path.exists()]
    for name, text in words:
        report.sections.append((f"last log lines of {name}", text))
