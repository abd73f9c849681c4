"""Every route and every dependency is a coroutine: FastAPI runs a plain `def` one in a worker
thread, a thread hop per request (it tripled the framework's CPU per `runs.wait` request)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api import assistants, crons, metrics, runs, store, system, threads
from app.ui import router as ui


def _calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def test_no_route_or_dependency_runs_in_a_worker_thread() -> None:
    modules = (assistants, crons, metrics, runs, store, system, threads, ui)
    routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 50
    sync = {
        f"{route.path} {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in _calls(route.dependant)
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    }
    assert not sync, f"plain def on a route (runs in a worker thread): {sorted(sync)}"
