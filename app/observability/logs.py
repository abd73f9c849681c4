"""Log lines as text or as one JSON object each (LOG_JSON), tagged with the run they are about.

A run's id and its thread's are context variables, set while a worker executes the run and
while a request that created one is answered; a filter on the handlers copies them onto every
record, so no call site has to pass them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
CONTEXT_FIELDS = ("run_id", "thread_id")
# Loggers of the servers around the app: they keep handlers of their own and do not
# propagate, so they get the formatter and the filter directly.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")

run_id_var: ContextVar[str | None] = ContextVar("runyard_run_id", default=None)
thread_id_var: ContextVar[str | None] = ContextVar("runyard_thread_id", default=None)

# What every LogRecord has; anything else on a record came from `extra=` or the filter.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of its message with terminal colours
}


@contextlib.contextmanager
def run_context(run_id: str, thread_id: str) -> Iterator[None]:
    """Tag every log line emitted inside the block (and in tasks it starts) with the run."""
    run_token = run_id_var.set(run_id)
    thread_token = thread_id_var.set(thread_id)
    try:
        yield
    finally:
        thread_id_var.reset(thread_token)
        run_id_var.reset(run_token)


def bind_run(run_id: str, thread_id: str) -> None:
    """Tag the rest of the current task (a request that created a run) with the run."""
    run_id_var.set(run_id)
    thread_id_var.set(thread_id)


class RunContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # A value passed with `extra=` wins over the context.
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id_var.get()
        if getattr(record, "thread_id", None) is None:
            record.thread_id = thread_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with ` run_id=... thread_id=...` appended when there is a run."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [
            f"{name}={value}"
            for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        ]
        if not tags:
            return line
        # After the first line, so a traceback below it stays intact.
        head, sep, rest = line.partition("\n")
        return f"{head} {' '.join(tags)}{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, then any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and value is not None and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


def make_formatter(json: bool) -> logging.Formatter:
    return JsonFormatter() if json else TextFormatter()


def dress(handler: logging.Handler, formatter: logging.Formatter) -> None:
    """Give a handler our formatter and the run filter (once)."""
    handler.setFormatter(formatter)
    if not any(isinstance(f, RunContextFilter) for f in handler.filters):
        handler.addFilter(RunContextFilter())


def configure(level: str, *, json: bool) -> None:
    """Idempotent: create_app may run more than once in a process."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    formatter = make_formatter(json)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_runyard", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._runyard = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    dress(handler, formatter)
    root.setLevel(level.upper())
    if json:
        # Python warnings would otherwise be bare lines on stderr among the JSON ones.
        logging.captureWarnings(True)
        for name in SERVER_LOGGERS:
            for server_handler in logging.getLogger(name).handlers:
                dress(server_handler, formatter)
