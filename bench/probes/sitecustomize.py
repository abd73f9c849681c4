"""Timestamps at the steps of a stream's start, inside a Runyard server that `bench.first_event`
started. That tool puts this directory first on the server's PYTHONPATH and names, in
RUNYARD_BENCH_PROBES, the directory where each process writes its marks; without that
variable this file does nothing. The probes wrap a few functions as their modules are
imported (a probe in the code itself would cost every server what it measures).

Each process keeps (label, perf_counter) pairs and rewrites `marks-<pid>.txt` every half
second, from a thread started by its first mark (after Gunicorn's fork).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

OUT = os.environ.get("RUNYARD_BENCH_PROBES")
FLUSH_SECS = 0.5
KEEP = 100_000

_marks: list[tuple[str, float]] = []
_writer: threading.Thread | None = None
_writer_pid = 0


def mark(label: str) -> None:
    global _writer, _writer_pid
    _marks.append((label, time.perf_counter()))
    if _writer_pid != os.getpid():  # the first mark of this process (or of a forked child)
        _writer_pid = os.getpid()
        _writer = threading.Thread(target=_write_forever, daemon=True)
        _writer.start()


def _write_forever() -> None:
    path = os.path.join(OUT or ".", f"marks-{os.getpid()}.txt")
    while True:
        time.sleep(FLUSH_SECS)
        lines = [f"{label} {t:.7f}\n" for label, t in _marks[-KEEP:]]
        with open(path + ".tmp", "w") as out:
            out.writelines(lines)
        os.replace(path + ".tmp", path)


def _around(fn: Callable[..., Any], before: str | None, after: str | None = None) -> Any:
    @functools.wraps(fn)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            mark(before)
        try:
            return await fn(*args, **kwargs)
        finally:
            if after:
                mark(after)

    return wrapped


def _guards(module: ModuleType) -> None:
    call = module.BodyLimit.__call__

    @functools.wraps(call)
    async def wrapped(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("method") == "POST" and scope.get("path") == "/runs/stream":
            mark("request")
        return await call(self, scope, receive, send)

    module.BodyLimit.__call__ = wrapped


def _runs_routes(module: ModuleType) -> None:
    module._create = _around(module._create, "route")


def _runs_store(module: ModuleType) -> None:
    runs = module.Runs
    runs.insert_with_thread = _around(runs.insert_with_thread, "insert", "inserted")


def _sse(module: ModuleType) -> None:
    metadata_frame, frame = module.metadata_frame, module.frame

    def first_frame(*args: Any, **kwargs: Any) -> bytes:
        mark("metadata")
        return metadata_frame(*args, **kwargs)

    def any_frame(event: str, *args: Any, **kwargs: Any) -> bytes:
        if event == "custom":
            mark("frame")
        return frame(event, *args, **kwargs)

    module.metadata_frame, module.frame = first_frame, any_frame


def _execute(module: ModuleType) -> None:
    module.execute = _around(module.execute, "execute")
    emit_now = module.EventEmitter.emit_now

    def emitted(self: Any, name: str, payload: Any) -> None:
        if name == "custom":
            mark("event")
        emit_now(self, name, payload)

    module.EventEmitter.emit_now = emitted


def _executor(module: ModuleType) -> None:
    module.run_graph = _around(module.run_graph, "graph")


def _memory(module: ModuleType) -> None:
    saver = module.InMemorySaver
    saver.aget_tuple = _around(saver.aget_tuple, "checkpointer")


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "app.api.guards": _guards,
    "app.api.runs": _runs_routes,
    "app.store.runs": _runs_store,
    "app.stream.sse": _sse,
    "app.worker.execute": _execute,
    "app.agents.executor": _executor,
    "langgraph.checkpoint.memory": _memory,
}


class _Patching(importlib.abc.Loader):
    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the probed modules with the other finders, and patches them once executed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Patching(spec.loader, patch)
                return spec
        return None


if OUT:
    sys.meta_path.insert(0, _Finder())
