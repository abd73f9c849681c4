"""Assistants as tools, for the MCP endpoint: each assistant is a tool whose arguments are its
graph's input, and calling it is a stateless run, waited for like `POST /runs/wait`: durable,
executed by any worker, cancellable from the runs API like any other run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from app import serde
from app.container import Container
from app.services import runs as run_service
from app.services.assistants import schemas_of
from app.services.errors import ServiceError
from app.services.runs import RunRequest

Row = dict[str, Any]

# Assistants are few; a server with more offers the oldest this many.
MAX_TOOLS = 10_000
# Tools listed at once; a listing goes on from its cursor (the next one's position).
PAGE = 100
# What MCP allows in a tool's name (1 to 128 of these characters).
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]+")
NAME_MAX = 128
MESSAGES_ARGUMENT = {
    "type": "string",
    "title": "Messages",
    "description": "The user message to send to the agent.",
}


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    assistant_id: str


@dataclass(frozen=True)
class Outcome:
    """What a tool call answers: the run's output, or why there is none."""

    output: Any
    error: str | None = None


class UnknownTool(LookupError):
    pass


def tool_name(name: str) -> str:
    cleaned = _NOT_ALLOWED.sub("_", name).strip("_")
    return cleaned[:NAME_MAX] or "assistant"


def input_schema(graph_schema: Any) -> dict[str, Any]:
    """The graph's input schema as a tool's arguments. A chat graph's `messages` is asked for
    as the text of one user message: what a model calling a tool has to give."""
    if not isinstance(graph_schema, dict) or graph_schema.get("type", "object") != "object":
        return {"type": "object"}
    schema = dict(graph_schema)
    properties = schema.get("properties")
    if isinstance(properties, dict) and "messages" in properties:
        schema["properties"] = {**properties, "messages": MESSAGES_ARGUMENT}
        # The message classes' definitions, only `messages` referred to, go with it.
        rest = {k: v for k, v in schema.items() if k != "$defs"}
        if "$defs" in schema and b'"$ref"' not in serde.dumps(rest):
            schema = rest
    schema["type"] = "object"
    return schema


async def _named(c: Container) -> list[tuple[str, Row]]:
    """Every assistant of a loaded graph, oldest first, with its tool's name. Names are made
    fit for MCP; where two come out the same, the older assistant keeps it and the newer
    takes its id's first characters after it, so that every assistant can be called and no
    name moves."""
    rows = await c.assistants.search(
        graph_id=None,
        name=None,
        metadata=None,
        limit=MAX_TOOLS,
        offset=0,
        sort_by="created_at",
        sort_order="asc",
    )
    named: list[tuple[str, Row]] = []
    taken: set[str] = set()
    for row in rows:
        if row["graph_id"] not in c.registry:
            continue
        name = tool_name(row["name"] or row["graph_id"])
        if name in taken:
            suffix = "_" + row["assistant_id"].replace("-", "")[:8]
            name = name[: NAME_MAX - len(suffix)] + suffix
        taken.add(name)
        named.append((name, row))
    return named


async def _tool(c: Container, name: str, row: Row) -> Tool:
    title = row["name"] or row["graph_id"]
    graph = await c.registry.get(row["graph_id"], row["config"] or {})
    return Tool(
        name=name,
        title=title,
        description=row.get("description") or f"Tool based on the {title} assistant",
        input_schema=input_schema(schemas_of(graph)["input_schema"]),
        assistant_id=row["assistant_id"],
    )


class BadCursor(ValueError):
    pass


async def list_tools(c: Container, cursor: str | None = None) -> tuple[list[Tool], str | None]:
    """A page of the tools, from `cursor` (None: the first), and the next page's cursor (None
    after the last); only this page's graphs' schemas are built."""
    start = 0
    if cursor is not None:
        if not cursor.isdigit():
            raise BadCursor(cursor)
        start = int(cursor)
    named = await _named(c)
    page = [await _tool(c, name, row) for name, row in named[start : start + PAGE]]
    return page, str(start + PAGE) if start + PAGE < len(named) else None


async def find(c: Container, name: str) -> Tool:
    """The tool of that name; its graph's schema is the only one built."""
    for named, row in await _named(c):
        if named == name:
            return await _tool(c, name, row)
    raise UnknownTool(name)


def _invalid_arguments(tool: Tool, arguments: dict[str, Any]) -> str | None:
    try:
        jsonschema.validate(arguments, tool.input_schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"Invalid arguments{f' at {where}' if where else ''}: {exc.message}"
    except jsonschema.SchemaError:
        return None  # a schema the validator cannot read: the graph judges the input
    return None


def _graph_input(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    text = arguments.get("messages")
    if tool.input_schema.get("properties", {}).get("messages") == MESSAGES_ARGUMENT and isinstance(
        text, str
    ):
        return {**arguments, "messages": [{"role": "user", "content": text}]}
    return arguments


async def call(c: Container, tool: Tool, arguments: dict[str, Any]) -> Outcome:
    """Run the tool's assistant on the arguments, statelessly, and wait for the run's end."""
    invalid = _invalid_arguments(tool, arguments)
    if invalid:
        return Outcome(None, invalid)
    request = RunRequest(
        assistant_id=tool.assistant_id,
        input=_graph_input(tool, arguments),
        metadata={"source": "mcp"},
    )
    try:
        run = await run_service.create(c, None, request, stateless=True)
    except ServiceError as exc:
        return Outcome(None, exc.detail)
    final = await run_service.wait_terminal(c, run["run_id"], seen_running=True)
    if final is None:
        return Outcome(None, f"Run {run['run_id']} was deleted before it ended")
    status, output = final["status"], final.get("output")
    # A run that stopped at an interrupt answers its state and the interrupt, as `wait` does.
    if status == "success" or (isinstance(output, dict) and "__interrupt__" in output):
        return Outcome(run_service.wait_output(final))
    error = final.get("error") or {}
    if status in ("error", "timeout") and error:
        kind, message = error.get("error"), error.get("message")
        return Outcome(None, f"{kind}: {message}" if kind and message else str(message or kind))
    return Outcome(None, f"Run {run['run_id']} ended {status}")
