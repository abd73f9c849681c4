"""Session-wide real services. Each test session gets its own database and Redis prefix."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import postgres_database, redis_prefix

os.environ.setdefault("LANGGRAPH_NO_VERSION_CHECK", "true")


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    with postgres_database() as uri:
        yield uri


@pytest.fixture(scope="session")
def redis_key_prefix() -> Iterator[str]:
    with redis_prefix() as prefix:
        yield prefix
