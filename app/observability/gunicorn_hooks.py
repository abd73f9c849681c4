"""Gunicorn master hooks: the shared metrics directory of the workers, and JSON log lines.

The master must not import prometheus_client before PROMETHEUS_MULTIPROC_DIR is set: the
library picks its multi-process mode at import, and the workers it forks inherit the module.
So prometheus_client is imported here only once the directory exists.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from app.observability.logs import dress, make_formatter

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set when the directory is one this master made (and removes at exit); a re-executed master
# (USR2) inherits it and makes a fresh one instead of emptying files its elder still uses.
OWNED_ENV = "RUNYARD_METRICS_DIR_OWNED"


def on_starting(server: Any) -> None:
    """Before any worker is forked: a metrics directory with no files from an earlier run."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured and not os.environ.get(OWNED_ENV):
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="runyard-metrics-"))
        os.environ[OWNED_ENV] = "1"
    os.environ[MULTIPROC_ENV] = str(path)
    _multiprocess_values()


def _multiprocess_values() -> None:
    """Should a library have imported prometheus_client already, switch it to multi-process
    values now: metrics made from here on (ours, in the workers) then use the directory."""
    values = sys.modules.get("prometheus_client.values")
    if values is None:
        return
    values.ValueClass = values.get_value_class()
    if "app.observability.metrics" in sys.modules:
        logging.getLogger("gunicorn.error").warning(
            "Runyard's metrics were created before %s was set: /metrics will show the figures "
            "of the worker scraped only",
            MULTIPROC_ENV,
        )


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges (running runs, stream clients) no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.environ.get(OWNED_ENV):
        shutil.rmtree(path, ignore_errors=True)


class JsonLogger(Logger):
    """Gunicorn's own lines (the master's too) as JSON objects, like the app's (LOG_JSON)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = make_formatter(json=True)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                dress(handler, formatter)


def server_options(*, json_logs: bool) -> dict[str, Any]:
    """What `runyard serve` adds to its Gunicorn options."""
    options: dict[str, Any] = {
        "on_starting": on_starting,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }
    if json_logs:
        options["logger_class"] = JsonLogger
    return options
