"""What the `runyard` commands share: settings, readable failures, tables, the database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

if TYPE_CHECKING:
    from app.broker import Broker
    from app.settings import Settings
    from app.store.db import Database

# Long enough for a slow network, short enough that an unreachable host is reported, not waited on.
CONNECT_TIMEOUT_SECS = 5.0
CELL_WIDTH = 60


def positive_int(text: str) -> int:
    """An argparse type: --limit and the like."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def fail(message: str) -> NoReturn:
    sys.exit(f"runyard: {message}")


def apply_config_path(path: str | None) -> None:
    if path:
        os.environ["RUNYARD_CONFIG"] = os.path.abspath(path)


def settings_errors(exc: ValidationError) -> list[str]:
    """One line per wrong setting: `NAME=value: what is wrong`."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        value = error.get("input")
        shown = f"{name}={value}" if isinstance(value, str | int | float) else name
        lines.append(f"{shown}: {error['msg']}")
    return lines


def load_settings() -> Settings:
    from app.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        fail(
            "invalid settings:\n  "
            + "\n  ".join(settings_errors(exc))
            + "\nfix them in the environment or .env (docs/configuration.md lists every setting)"
        )


def database_label(settings: Settings) -> str:
    """Where the database is, without its password."""
    if settings.embedded_db:
        return f"embedded SQLite {embedded_db_path(settings)}"
    from sqlalchemy.engine import make_url

    try:
        url = make_url(settings.sqlalchemy_url).set(drivername="postgresql")
        return "Postgres " + url.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL too broken to parse is shown as such
        return "Postgres (DATABASE_URI does not parse as a URL)"


def embedded_db_path(settings: Settings) -> Path:
    return (settings.data_dir / "runyard.db").resolve()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECS:g} s (host unreachable or firewalled?)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_cell(value: Any, width: int = CELL_WIDTH) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        from app import serde

        value = serde.dumps_str(value)
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[format_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The database the server uses, checked reachable, or a clear exit."""
    from sqlalchemy import text

    from app.store.db import Database

    if settings.embedded_db and not embedded_db_path(settings).is_file():
        # Opening it would create an empty file and then fail on missing tables.
        fail(
            f"no embedded database at {embedded_db_path(settings)}: set RUNYARD_DATA_DIR to the "
            "folder `runyard dev` uses (default .runyard in its working directory), or "
            "DATABASE_URI for Postgres"
        )
    db = Database(settings.sqlalchemy_url, pool_size=2)
    try:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECS), db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure to connect is reported the same way
            fail(f"cannot reach {database_label(settings)}: {describe_error(exc)}")
        yield db
    finally:
        await db.dispose()


def make_broker(settings: Settings) -> Broker:
    from app.broker import create_broker

    return create_broker(
        settings.REDIS_URI,
        prefix=settings.REDIS_KEY_PREFIX,
        maxlen=settings.STREAM_REPLAY_MAXLEN,
        ttl=settings.STREAM_REPLAY_TTL_SECS,
    )
