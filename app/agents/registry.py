"""The graphs a server knows: imported once per process, bound to the checkpointer."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import uuid
from pathlib import Path
from typing import Any

from langgraph.graph.state import StateGraph
from langgraph.pregel import Pregel

from app.agents.config import ConfigError, GraphSpec, ProjectConfig

# Assistant ids of the per-graph defaults are uuid5(this, graph_id): stable across restarts
# and processes, so every process agrees without asking the database.
ASSISTANT_NAMESPACE = uuid.UUID("6b0c8a56-3f1e-5a8e-9a55-72756e796172")


@functools.lru_cache(maxsize=4096)  # asked on every run created by graph id
def default_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


def _import_target(spec: GraphSpec, root: Path) -> Any:
    location, _, attr = spec.target.rpartition(":")
    if location.endswith(".py") or "/" in location:
        file = (root / location).resolve()
        if not file.is_file():
            raise ConfigError(f'graph "{spec.graph_id}": file {file} not found')
        module_name = f"runyard_graphs.{spec.graph_id}_{abs(hash(str(file)))}"
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, file)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f'graph "{spec.graph_id}": cannot import {file}')
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise ConfigError(
                    f'graph "{spec.graph_id}": importing {file} failed: {type(exc).__name__}: {exc}'
                ) from exc
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise ConfigError(
                f'graph "{spec.graph_id}": importing {location} failed: {type(exc).__name__}: {exc}'
            ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f'graph "{spec.graph_id}": {location} has no "{attr}"') from None


def load_graph(spec: GraphSpec, root: Path) -> Any:
    """Import one graph: a compiled graph (a StateGraph is compiled here) or a factory.
    Raises ConfigError naming the graph; `runyard doctor` reports each graph this way."""
    target = _import_target(spec, root)
    if isinstance(target, StateGraph):
        target = target.compile()
    if not isinstance(target, Pregel) and not callable(target):
        raise ConfigError(
            f'graph "{spec.graph_id}": {spec.target} is neither a compiled graph nor a '
            "function returning one"
        )
    return target


class GraphRegistry:
    def __init__(self, config: ProjectConfig) -> None:
        self.config = config
        self._targets: dict[str, Any] = {}
        self._bound: dict[str, Pregel] = {}
        self._checkpointer: Any = None
        self._store: Any = None

    def load(self) -> None:
        """Import every graph now, so a broken one stops start-up with a clear message."""
        for graph_id, spec in self.config.graphs.items():
            self._targets[graph_id] = load_graph(spec, self.config.root)

    def bind(self, checkpointer: Any, store: Any = None) -> None:
        self._checkpointer = checkpointer
        self._store = store
        self._bound.clear()

    @property
    def checkpointer(self) -> Any:
        """The server's checkpointer the graphs are bound to (None before `bind`)."""
        return self._checkpointer

    @property
    def graph_ids(self) -> list[str]:
        return list(self._targets)

    def description(self, graph_id: str) -> str | None:
        return self.config.graphs[graph_id].description

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._targets

    async def get(
        self, graph_id: str, config: dict[str, Any] | None = None, *, checkpointer: Any = None
    ) -> Pregel:
        """The graph with the server's checkpointer attached (or `checkpointer`, for a run
        whose state nobody reads afterwards); factories are called per use."""
        target = self._targets[graph_id]
        if checkpointer is not None:
            if isinstance(target, Pregel):
                return self._attach(target, checkpointer)
            return self._attach(await self._make(target, graph_id, config), checkpointer)
        if isinstance(target, Pregel):
            bound = self._bound.get(graph_id)
            if bound is None:
                bound = self._bound[graph_id] = self._attach(target)
            return bound
        return self._attach(await self._make(target, graph_id, config))

    @staticmethod
    async def _make(target: Any, graph_id: str, config: dict[str, Any] | None) -> Pregel:
        params = inspect.signature(target).parameters
        made = target(config or {}) if params else target()
        if inspect.isawaitable(made):
            made = await made
        if isinstance(made, StateGraph):
            made = made.compile()
        if not isinstance(made, Pregel):
            raise TypeError(f"graph factory for {graph_id!r} returned {type(made).__name__}")
        return made

    def _attach(self, graph: Pregel, checkpointer: Any = None) -> Pregel:
        update: dict[str, Any] = {
            "checkpointer": checkpointer if checkpointer is not None else self._checkpointer
        }
        if self._store is not None:
            update["store"] = self._store
        return graph.copy(update=update)
