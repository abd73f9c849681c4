"""Reading a langgraph.json-style config file: graphs, dependencies, env."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


class ConfigError(Exception):
    """The config file is missing or wrong; the message says how to fix it."""


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    target: str  # "path/to/file.py:attr" or "package.module:attr"
    description: str | None = None


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    graphs: dict[str, GraphSpec]
    dependencies: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # LangGraph's `http` section; of it, Runyard reads `disable_mcp`.
    http: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def mcp_enabled(self) -> bool:
        return not self.http.get("disable_mcp", False)


def load_config(path: str | os.PathLike[str]) -> ProjectConfig:
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(
            f"config file {file} not found: pass --config PATH or set RUNYARD_CONFIG "
            "to a langgraph.json that lists your graphs"
        )
    try:
        raw = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("graphs"), dict) or not raw["graphs"]:
        raise ConfigError(f'{file} needs a "graphs" object mapping graph ids to "file.py:variable"')
    graphs: dict[str, GraphSpec] = {}
    for graph_id, value in raw["graphs"].items():
        if isinstance(value, str):
            graphs[graph_id] = GraphSpec(graph_id, value)
        elif isinstance(value, dict) and isinstance(value.get("path"), str):
            graphs[graph_id] = GraphSpec(graph_id, value["path"], value.get("description"))
        else:
            raise ConfigError(f'graph "{graph_id}" in {file}: expected "path/to/file.py:variable"')
        if ":" not in graphs[graph_id].target:
            raise ConfigError(
                f'graph "{graph_id}" in {file}: "{graphs[graph_id].target}" lacks ":variable"'
            )
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(f'"dependencies" in {file} must be a list of paths or package names')
    env = _read_env(raw.get("env"), file.parent)
    http = raw.get("http")
    http = {} if http is None else http
    if not isinstance(http, dict) or not isinstance(http.get("disable_mcp", False), bool):
        raise ConfigError(f'"http" in {file} must be an object; its "disable_mcp" true or false')
    return ProjectConfig(path=file, graphs=graphs, dependencies=deps, env=env, http=http)


def _read_env(value: Any, root: Path) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        env_file = (root / value).resolve()
        if not env_file.is_file():
            raise ConfigError(f'"env" names {env_file}, which does not exist')
        return _parse_dotenv(env_file.read_text())
    raise ConfigError('"env" must be an object of variables or the path of a .env file')


def _parse_dotenv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def apply_environment(config: ProjectConfig) -> None:
    """Make the project importable and its env visible; real environment variables win."""
    for key, value in config.env.items():
        os.environ.setdefault(key, value)
    for dep in config.dependencies:
        candidate = (config.root / dep).resolve()
        if candidate.is_dir() and str(candidate) not in sys.path:
            sys.path.insert(0, str(candidate))
    if str(config.root) not in sys.path:
        sys.path.insert(0, str(config.root))
