"""Cron schedule math and request mapping: no database, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.services import crons
from app.services.errors import Invalid


def _row(schedule: str, timezone: str | None = None, end_time: datetime | None = None) -> dict:
    return {"schedule": schedule, "timezone": timezone, "end_time": end_time}


@pytest.mark.parametrize("schedule", ["* * * * *", "*/5 9-17 * * mon-fri", "0 0 1 1 *", "@daily"])
def test_standard_schedules_are_accepted(schedule: str) -> None:
    crons.check_schedule(schedule)


@pytest.mark.parametrize(
    "schedule",
    ["", "bad", "* * * *", "* * * * * *", "61 * * * *", "* 24 * * *", "* * * * mon-xyz"],
)
def test_bad_schedules_are_invalid(schedule: str) -> None:
    with pytest.raises(Invalid, match="cron schedule"):
        crons.check_schedule(schedule)


def test_a_schedule_that_never_fires_is_invalid() -> None:
    with pytest.raises(Invalid, match="never fires"):
        crons.check_schedule("0 0 30 2 *")


def test_unknown_timezone_is_invalid() -> None:
    with pytest.raises(Invalid, match="timezone"):
        crons.zone("Mars/Olympus_Mons")


def test_next_slot_is_strictly_after() -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert crons.next_slot("* * * * *", None, at) == at + timedelta(minutes=1)
    assert crons.next_slot("* * * * *", None, at + timedelta(seconds=1)) == at + timedelta(
        minutes=1
    )


def test_schedule_reads_in_its_timezone_across_daylight_saving() -> None:
    # New York is UTC-5 in winter and UTC-4 from 8 March 2026.
    winter = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    summer = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    assert crons.next_slot("0 9 * * *", "America/New_York", winter).hour == 14
    assert crons.next_slot("0 9 * * *", "America/New_York", summer).hour == 13
    assert crons.next_slot("0 9 * * *", None, winter).hour == 9


def test_missed_slots_collapse_into_one() -> None:
    """The slot after a long outage is the first one after now, not the first missed one."""
    now = datetime(2026, 3, 1, 12, 30, 10, tzinfo=UTC)
    assert crons.upcoming(_row("* * * * *"), now) == datetime(2026, 3, 1, 12, 31, tzinfo=UTC)


def test_no_slot_after_end_time() -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    end = datetime(2026, 3, 1, 12, 1, 0, tzinfo=UTC)
    assert crons.upcoming(_row("* * * * *", end_time=end), now) == end
    assert crons.upcoming(_row("* * * * *", end_time=end), end) is None


def test_naive_times_read_as_utc() -> None:
    naive = datetime(2030, 1, 1, 8, 0)
    assert crons.to_utc(naive) == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    paris = datetime.fromisoformat("2030-01-01T09:00:00+01:00")
    assert crons.to_utc(paris) == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


def test_run_request_carries_payload_metadata_and_cron_id() -> None:
    row = {
        "cron_id": "c1",
        "assistant_id": "a1",
        "thread_id": None,
        "on_run_completed": "keep",
        "metadata": {"team": "x"},
        "payload": {
            "input": {"steps": 1},
            "config": {"tags": ["t"], "configurable": {"k": 1}},
            "stream_mode": "updates",
            "checkpoint_during": False,
            "multitask_strategy": "reject",
        },
    }
    req = crons.run_request(row)
    assert req.assistant_id == "a1" and req.input == {"steps": 1}
    assert req.metadata == {"team": "x", "cron_id": "c1"}
    assert req.config == {"tags": ["t"], "configurable": {"k": 1, "cron_id": "c1"}}
    assert req.stream_mode == ["updates"]
    assert req.durability == "exit"
    assert req.multitask_strategy == "reject"
    assert req.on_completion == "keep"


def test_public_select_picks_fields() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    row = {key: None for key in crons.PUBLIC_FIELDS} | {"created_at": now, "enabled": True}
    assert set(crons.public(row)) == set(crons.PUBLIC_FIELDS)
    picked = crons.public(row, ["cron_id", "enabled", "now"])
    assert set(picked) == {"cron_id", "enabled", "now"}
