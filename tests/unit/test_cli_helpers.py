"""The `runyard` command's pure parts: readable settings errors, tables, schema positions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

from app.cli.common import settings_errors, table
from app.cli.doctor import _migrations_check, _prefix_usage, _redact
from app.settings import Settings
from app.store.schema import SchemaState, schema_state


def test_settings_errors_name_the_setting_and_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(N_JOBS_PER_WORKER=-1, BG_JOB_LEASE_SECS="soon")
    lines = settings_errors(caught.value)
    assert "N_JOBS_PER_WORKER=-1: Input should be greater than or equal to 0" in lines
    assert any(line.startswith("BG_JOB_LEASE_SECS=soon: ") for line in lines)


def test_table_aligns_and_shortens_cells() -> None:
    rows = [
        {"id": "a", "when": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "error": "x" * 200},
        {"id": "bbb", "when": None, "error": {"k": 1}},
    ]
    out = table(rows, ["id", "when", "error"]).splitlines()
    assert out[0].split() == ["ID", "WHEN", "ERROR"]
    assert out[1].startswith("a    2030-01-02 03:04:05  xxx") and out[1].endswith("…")
    assert out[2].split() == ["bbb", '{"k":1}']


def test_schema_state_counts_what_is_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        fresh = schema_state(conn, url)
        assert fresh.current is None and fresh.known and fresh.pending[0] == "0001"
        assert fresh.pending[-1] == fresh.head
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
        behind = schema_state(conn, url)
        assert behind.current == "0001" and "0001" not in behind.pending and not behind.at_head
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        newer = schema_state(conn, url)
        assert not newer.known and newer.pending == []
    engine.dispose()


def test_migration_findings() -> None:
    assert _migrations_check(SchemaState("0004", "0004", [], True)).status == "OK"
    behind = _migrations_check(SchemaState("0002", "0004", ["0003", "0004"], True))
    assert behind.status == "WARN" and "runyard migrate" in (behind.fix or "")
    assert _migrations_check(SchemaState("0009", "0004", [], False)).status == "FAIL"


def test_redis_uri_passwords_are_hidden() -> None:
    assert _redact("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert _redact("redis://app:s3cret@h:6379/0") == "redis://app:***@h:6379/0"
    assert (
        _redact("redis+sentinel://:pw@a:26379,b:26379/m")
        == "redis+sentinel://:***@a:26379,b:26379/m"
    )
    assert _redact("redis://h:6379/0") == "redis://h:6379/0"


def test_prefix_usage() -> None:
    assert "not in use yet" in _prefix_usage("runyard:", 0, 0)
    assert "2 server processes connected now, 5 keys" in _prefix_usage("runyard:", 2, 5)
