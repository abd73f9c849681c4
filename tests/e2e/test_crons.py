"""Crons through the official `langgraph-sdk`, against the embedded and the production server.

A new `* * * * *` cron first fires at the next minute. To see firings without waiting for
the clock, a test moves a cron's `next_run_date` into the past in the server's database and
polls for the run. Every cron a test makes is deleted when it ends: the servers are shared."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError
from langgraph_sdk.schema import Cron
from sqlalchemy import create_engine, select, update

from app.store.filters import json_contains
from app.store.tables import crons, runs
from tests.support import Server, until

pytestmark = pytest.mark.e2e

EVERY_MINUTE = "* * * * *"


class ServerDb:
    """The server's own database, for what the API cannot do: make a cron due now."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        self.engine = create_engine(url)

    def make_due(self, cron_ids: list[str], at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(crons).where(crons.c.cron_id.in_(cron_ids)).values(next_run_date=at)
            )

    def runs_of(self, cron_id: str) -> list[dict[str, Any]]:
        """Runs a cron created, oldest first (a stateless cron's threads are not searchable)."""
        query = (
            select(runs.c.run_id, runs.c.thread_id, runs.c.status, runs.c.created_at)
            .where(json_contains(runs.c.metadata, {"cron_id": cron_id}, postgres=self.postgres))
            .order_by(runs.c.seq)
        )
        with self.engine.connect() as conn:
            rows = [dict(m) for m in conn.execute(query).mappings()]
        for row in rows:
            if row["created_at"].tzinfo is None:
                row["created_at"] = row["created_at"].replace(tzinfo=UTC)
        return rows


def _db_url(server: Server, request: pytest.FixtureRequest) -> str:
    if server.mode == "dev":
        return f"sqlite:///{server.workdir / 'data' / 'runyard.db'}"
    pg_uri: str = request.getfixturevalue("pg_uri")
    return "postgresql+psycopg://" + pg_uri.split("://", 1)[1]


@contextlib.contextmanager
def _server_db(server: Server, request: pytest.FixtureRequest) -> Iterator[ServerDb]:
    db = ServerDb(_db_url(server, request))
    try:
        yield db
    finally:
        db.engine.dispose()


@pytest.fixture
def db(server: Server, request: pytest.FixtureRequest) -> Iterator[ServerDb]:
    with _server_db(server, request) as found:
        yield found


@pytest.fixture
def pg_db(production: Server, request: pytest.FixtureRequest) -> Iterator[ServerDb]:
    with _server_db(production, request) as found:
        yield found


class Crons:
    """Creates crons through the SDK and deletes them all afterwards."""

    def __init__(self, url: str) -> None:
        self.client = get_client(url=url)
        self.made: list[str] = []

    async def stateless(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("schedule", EVERY_MINUTE)
        kwargs.setdefault("input", {"steps": 1})
        cron = await self.client.crons.create("counter", **kwargs)
        self.made.append(cron["cron_id"])
        return cron

    async def on_thread(self, thread_id: str, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("schedule", EVERY_MINUTE)
        kwargs.setdefault("input", {"steps": 1})
        cron = await self.client.crons.create_for_thread(thread_id, "counter", **kwargs)
        self.made.append(cron["cron_id"])
        return cron

    async def get(self, cron_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=str(self.client.http.client.base_url)) as http:
            response = await http.get(f"/runs/crons/{cron_id}")
        response.raise_for_status()
        return response.json()

    async def cleanup(self) -> None:
        for cron_id in self.made:
            with contextlib.suppress(NotFoundError):
                await self.client.crons.delete(cron_id)


@contextlib.asynccontextmanager
async def _crons(url: str) -> AsyncIterator[Crons]:
    made = Crons(url)
    try:
        yield made
    finally:
        await made.cleanup()


@pytest.fixture
async def cr(server: Server) -> AsyncIterator[Crons]:
    async with _crons(server.url) as made:
        yield made


def _tag() -> dict[str, str]:
    return {"test": uuid.uuid4().hex}


def _next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- creating, reading, changing ------------------------------------------------------------


async def test_create_both_kinds(cr: Crons) -> None:
    client = cr.client
    counter = await client.assistants.get("counter")
    tag = _tag()
    before = datetime.now(UTC)
    stateless = await cr.stateless(input={"steps": 2}, metadata=tag, config={"tags": ["x"]})
    after = datetime.now(UTC)
    # The fields of the SDK's Cron type.
    assert set(stateless) >= set(Cron.__annotations__)
    assert stateless["assistant_id"] == counter["assistant_id"]
    assert stateless["thread_id"] is None and stateless["user_id"] is None
    assert stateless["on_run_completed"] == "delete" and stateless["enabled"] is True
    assert stateless["schedule"] == EVERY_MINUTE and stateless["timezone"] is None
    assert stateless["metadata"] == tag and stateless["end_time"] is None
    assert stateless["payload"]["input"] == {"steps": 2}
    assert stateless["payload"]["config"] == {"tags": ["x"]}
    # Not at once: at the schedule's next slot.
    next_run = _at(stateless["next_run_date"])
    assert next_run in (_next_minute(before), _next_minute(after))

    thread = await client.threads.create()
    end = datetime.now(UTC) + timedelta(days=30)
    on_thread = await cr.on_thread(
        thread["thread_id"],
        schedule="0 9 * * *",
        timezone="America/New_York",
        end_time=end,
        multitask_strategy="reject",
        enabled=False,
    )
    assert on_thread["thread_id"] == thread["thread_id"]
    assert on_thread["on_run_completed"] is None and on_thread["enabled"] is False
    assert on_thread["timezone"] == "America/New_York"
    assert _at(on_thread["end_time"]) == end
    assert on_thread["payload"]["multitask_strategy"] == "reject"
    nine_in_new_york = _at(on_thread["next_run_date"])
    assert nine_in_new_york is not None
    local = nine_in_new_york.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (9, 0)
    assert timedelta(0) < nine_in_new_york - datetime.now(UTC) <= timedelta(days=1)
    assert await cr.get(on_thread["cron_id"]) == on_thread


async def test_bad_requests(cr: Crons) -> None:
    client = cr.client
    async with httpx.AsyncClient(base_url=str(client.http.client.base_url)) as http:
        for schedule in ("bad", "* * * *", "* * * * * *", "61 * * * *", "0 0 30 2 *"):
            response = await http.post(
                "/runs/crons", json={"assistant_id": "counter", "schedule": schedule}
            )
            assert response.status_code == 422, schedule
            assert "schedule" in response.json()["detail"], schedule
        response = await http.post(
            "/runs/crons",
            json={"assistant_id": "counter", "schedule": EVERY_MINUTE, "timezone": "Mars/Base"},
        )
        assert response.status_code == 422 and "timezone" in response.json()["detail"]
        response = await http.get("/runs/crons/not-a-uuid")
        assert response.status_code == 422
    with pytest.raises(NotFoundError):
        await client.crons.create("no-such-graph", schedule=EVERY_MINUTE)
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(str(uuid.uuid4()), "counter", schedule=EVERY_MINUTE)
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.crons.update(unknown, enabled=False)
    with pytest.raises(NotFoundError):
        await client.crons.delete(unknown)
    cron = await cr.stateless(metadata=_tag())
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(cron["cron_id"], schedule="every day")
    # Nothing half-written: the cron is as it was.
    assert (await cr.get(cron["cron_id"]))["schedule"] == EVERY_MINUTE
    thread = await client.threads.create()
    on_thread = await cr.on_thread(thread["thread_id"])
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(on_thread["cron_id"], on_run_completed="keep")


async def test_search_and_count(cr: Crons) -> None:
    client = cr.client
    tag = _tag()
    thread = await client.threads.create()
    first = await cr.stateless(metadata={**tag, "n": 1})
    second = await cr.stateless(metadata={**tag, "n": 2}, enabled=False, on_run_completed="keep")
    third = await cr.on_thread(thread["thread_id"], metadata={**tag, "n": 3}, schedule="0 * * * *")
    ids = [first["cron_id"], second["cron_id"], third["cron_id"]]

    found = await client.crons.search(metadata=tag, sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in found] == ids
    newest_first = await client.crons.search(metadata=tag)
    assert [c["cron_id"] for c in newest_first] == ids[::-1]
    assert [c["cron_id"] for c in await client.crons.search(metadata={**tag, "n": 2})] == [ids[1]]
    on_thread = await client.crons.search(thread_id=thread["thread_id"])
    assert [c["cron_id"] for c in on_thread] == [ids[2]]
    disabled = await client.crons.search(metadata=tag, enabled=False)
    assert [c["cron_id"] for c in disabled] == [ids[1]]
    enabled = await client.crons.search(metadata=tag, enabled=True, sort_order="asc")
    assert [c["cron_id"] for c in enabled] == [ids[0], ids[2]]
    # By graph name or by assistant id.
    counter = await client.assistants.get("counter")
    by_graph = await client.crons.search(assistant_id="counter", metadata=tag, limit=100)
    by_id = await client.crons.search(assistant_id=counter["assistant_id"], metadata=tag)
    assert {c["cron_id"] for c in by_graph} == {c["cron_id"] for c in by_id} == set(ids)
    assert await client.crons.search(assistant_id="chat", metadata=tag) == []

    pages = [
        await client.crons.search(
            metadata=tag, limit=2, offset=offset, sort_by="cron_id", sort_order="asc"
        )
        for offset in (0, 2)
    ]
    assert [c["cron_id"] for page in pages for c in page] == sorted(ids)
    by_next_run = await client.crons.search(metadata=tag, sort_by="next_run_date", sort_order="asc")
    dates = [_at(c["next_run_date"]) for c in by_next_run]
    assert dates == sorted(dates)
    picked = await client.crons.search(metadata=tag, select=["cron_id", "enabled"], limit=1)
    assert len(picked) == 1 and set(picked[0]) == {"cron_id", "enabled"}

    assert await client.crons.count(metadata=tag) == 3
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1
    assert await client.crons.count(assistant_id="counter", metadata=tag) == 3
    assert await client.crons.count(metadata={**tag, "n": 3}) == 1
    assert await client.crons.count(metadata=_tag()) == 0


async def test_update(cr: Crons) -> None:
    client = cr.client
    tag = _tag()
    cron = await cr.stateless(metadata=tag, input={"steps": 1}, webhook="http://127.0.0.1:9/a")
    updated = await client.crons.update(
        cron["cron_id"],
        schedule="0 * * * *",
        input={"steps": 5},
        metadata={"extra": True},
        context={"k": "v"},
        interrupt_before=["tick"],
        on_run_completed="keep",
        durability="exit",
    )
    assert updated["schedule"] == "0 * * * *"
    next_run = _at(updated["next_run_date"])
    assert next_run is not None and (next_run.minute, next_run.second) == (0, 0)
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(hours=1)
    assert updated["metadata"] == {**tag, "extra": True}
    assert updated["payload"]["input"] == {"steps": 5}
    assert updated["payload"]["context"] == {"k": "v"}
    assert updated["payload"]["webhook"] == "http://127.0.0.1:9/a"
    assert updated["payload"]["interrupt_before"] == ["tick"]
    assert updated["payload"]["durability"] == "exit"
    assert updated["on_run_completed"] == "keep"
    assert updated["created_at"] == cron["created_at"]
    assert _at(updated["updated_at"]) > _at(cron["updated_at"])

    # An end time before the next slot: no slot left. Cleared: back on schedule.
    soon = datetime.now(UTC) + timedelta(seconds=1)
    ended = await client.crons.update(cron["cron_id"], end_time=soon, schedule="0 0 1 1 *")
    assert _at(ended["end_time"]) == soon and ended["next_run_date"] is None
    cleared = await client.crons.update(cron["cron_id"], end_time=None)
    assert cleared["end_time"] is None and cleared["next_run_date"] is not None
    assert _at(cleared["next_run_date"]).month == 1
    unchanged = await client.crons.update(cron["cron_id"], enabled=False)
    assert unchanged["enabled"] is False and unchanged["end_time"] is None
    assert unchanged["next_run_date"] == cleared["next_run_date"]
    again = await client.crons.update(cron["cron_id"], enabled=True, timezone="Asia/Tokyo")
    assert again["enabled"] is True and again["timezone"] == "Asia/Tokyo"
    local = _at(again["next_run_date"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.month, local.day, local.hour) == (1, 1, 0)


# -- firing ---------------------------------------------------------------------------------


async def test_thread_cron_fires_on_its_thread(cr: Crons, db: ServerDb) -> None:
    client = cr.client
    thread = await client.threads.create()
    tid = thread["thread_id"]
    tag = _tag()
    cron = await cr.on_thread(tid, input={"steps": 2}, metadata=tag)
    db.make_due([cron["cron_id"]], datetime.now(UTC) - timedelta(seconds=1))

    async def fired() -> list[dict[str, Any]]:
        return [r for r in await client.runs.list(tid) if r["metadata"].get("test") == tag["test"]]

    made = await until(fired, "the cron's run on its thread")
    run = made[0]
    wanted = {**tag, "cron_id": cron["cron_id"], "graph_id": "counter"}
    assert run["metadata"].items() >= wanted.items(), run["metadata"]
    assert run["assistant_id"] == cron["assistant_id"]
    assert (await client.runs.join(tid, run["run_id"]))["count"] == 2
    assert (await client.threads.get_state(tid))["values"]["count"] == 2
    # On to the next slot, which is still to come.
    after = await cr.get(cron["cron_id"])
    assert _at(after["next_run_date"]) > datetime.now(UTC) - timedelta(seconds=1)


async def test_stateless_cron_thread_deleted_or_kept(cr: Crons, db: ServerDb) -> None:
    client = cr.client
    dropped = await cr.stateless(metadata=_tag())
    kept = await cr.stateless(metadata=_tag(), on_run_completed="keep", input={"steps": 3})
    db.make_due([dropped["cron_id"], kept["cron_id"]], datetime.now(UTC) - timedelta(seconds=1))

    def finished(cron_id: str) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            done = [r for r in db.runs_of(cron_id) if r["status"] == "success"]
            return done[0] if done else None

        return check

    dropped_run = await until(finished(dropped["cron_id"]), "the default cron's run to succeed")
    kept_run = await until(finished(kept["cron_id"]), "the `keep` cron's run to succeed")
    assert dropped_run["thread_id"] != kept_run["thread_id"]
    with pytest.raises(NotFoundError):
        await client.threads.get(dropped_run["thread_id"])
    thread = await client.threads.get(kept_run["thread_id"])
    assert thread["values"]["count"] == 3 and thread["status"] == "idle"
    await client.threads.delete(kept_run["thread_id"])


async def test_deleted_disabled_and_ended_crons_do_not_fire(cr: Crons, db: ServerDb) -> None:
    client = cr.client
    gone = await cr.stateless(metadata=_tag())
    off = await cr.stateless(metadata=_tag(), enabled=False)
    ended = await cr.stateless(metadata=_tag(), end_time=datetime.now(UTC) - timedelta(hours=1))
    assert ended["next_run_date"] is None
    control = await cr.stateless(metadata=_tag())

    # `gone` fires once, then is deleted: a delete waits for a firing under way to end.
    db.make_due([gone["cron_id"]], datetime.now(UTC) - timedelta(seconds=1))
    await until(lambda: db.runs_of(gone["cron_id"]), "the first firing")
    await client.crons.delete(gone["cron_id"])
    runs_when_deleted = len(db.runs_of(gone["cron_id"]))
    assert await client.crons.search(metadata=gone["metadata"]) == []
    assert await client.crons.count(metadata=gone["metadata"]) == 0

    # All due at once (the ended one despite its end time): only the control fires.
    due = [gone["cron_id"], off["cron_id"], ended["cron_id"], control["cron_id"]]
    db.make_due(due, datetime.now(UTC) - timedelta(seconds=1))
    await until(lambda: db.runs_of(control["cron_id"]), "the control cron's firing")

    async def ended_settled() -> bool:
        return (await cr.get(ended["cron_id"]))["next_run_date"] is None

    await until(ended_settled, "the ended cron to be dealt with")
    assert db.runs_of(off["cron_id"]) == []
    assert db.runs_of(ended["cron_id"]) == []
    assert len(db.runs_of(gone["cron_id"])) == runs_when_deleted
    assert (await cr.get(off["cron_id"]))["enabled"] is False


async def test_cron_of_a_deleted_thread_goes_away(cr: Crons, db: ServerDb) -> None:
    client = cr.client
    thread = await client.threads.create()
    cron = await cr.on_thread(thread["thread_id"])
    await client.threads.delete(thread["thread_id"])
    db.make_due([cron["cron_id"]], datetime.now(UTC) - timedelta(seconds=1))

    async def gone() -> bool:
        return await client.crons.count(thread_id=thread["thread_id"]) == 0

    await until(gone, "the cron to be removed at its next firing")
    assert db.runs_of(cron["cron_id"]) == []


async def test_due_crons_fire_exactly_once_across_processes(
    production: Server, api_only: Server, pg_db: ServerDb
) -> None:
    """Three processes (two Gunicorn workers and an API-only one) check the same crons; each
    due cron gives one run. Each was due ten minutes ago, ten slots missed: still one run."""
    # Well clear of a minute boundary, so a cron's next slot cannot come during the test.
    await until(lambda: datetime.now(UTC).second < 40, "a quiet part of the minute", 25)
    async with _crons(production.url) as cr, _crons(api_only.url) as other:
        tag = _tag()
        made = [await (cr if i % 2 else other).stateless(metadata=tag) for i in range(60)]
        ids = [c["cron_id"] for c in made]
        pg_db.make_due(ids, datetime.now(UTC) - timedelta(minutes=10))

        await until(lambda: all(pg_db.runs_of(i) for i in ids), "every cron to fire", 60)
        after = {c["cron_id"]: c for c in await cr.client.crons.search(metadata=tag, limit=100)}
        for cron_id in ids:
            next_run = _at(after[cron_id]["next_run_date"])
            assert next_run is not None and next_run > datetime.now(UTC)
            # Runs of this slot, not of the next one should the test overrun the minute.
            fired = [r for r in pg_db.runs_of(cron_id) if r["created_at"] < next_run]
            assert len(fired) == 1, (cron_id, fired)
