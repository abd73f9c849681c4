"""Creating a thread: an id the server makes names no thread yet, so nothing is read first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from app.services import threads as service
from app.services.errors import Conflict
from app.store.db import Database
from app.store.threads import Threads


@pytest.fixture
def sent(pg: Database) -> Iterator[list[str]]:
    """The SQL statements sent while the test runs."""
    statements: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(pg.engine.sync_engine, "before_cursor_execute", keep)
    yield statements
    event.remove(pg.engine.sync_engine, "before_cursor_execute", keep)


def _container(pg: Database) -> Any:
    return SimpleNamespace(db=pg, threads=Threads(pg), registry={})


async def test_a_thread_without_an_id_is_one_insert(pg: Database, sent: list[str]) -> None:
    thread = await service.create(
        _container(pg), thread_id=None, metadata={"a": 1}, if_exists="raise"
    )
    assert sent == ["INSERT"]
    assert (await Threads(pg).get(thread["thread_id"]))["metadata"] == {"a": 1}


async def test_an_id_given_is_looked_up_first(pg: Database, sent: list[str]) -> None:
    c = _container(pg)
    thread_id = str(uuid.uuid4())
    await service.create(c, thread_id=thread_id, metadata={"a": 1}, if_exists="raise")
    assert sent == ["SELECT", "INSERT"]
    same = await service.create(c, thread_id=thread_id, metadata={"b": 2}, if_exists="do_nothing")
    assert same["metadata"] == {"a": 1}
    with pytest.raises(Conflict):
        await service.create(c, thread_id=thread_id, metadata=None, if_exists="raise")
