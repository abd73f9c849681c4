"""The client's floor: a server that does nothing but answer, for `--shape floor`.

    python -m bench.floor --port PORT

The bench's client is one Python process (langgraph-sdk over httpx) on the same two cores as
the server, and it has a cost of its own per request and per event. This server answers the
SDK calls the scenarios make (`runs.wait`, `runs.stream`, `runs.create` + `runs.join`) with
what the bench's graphs would return, as a raw ASGI app on the same HTTP stack as Runyard
(Uvicorn with uvloop and httptools, one process), with no database, broker or graph: a stream
of `emit` is its frames, written as Runyard writes them, with the graph's own sleeps between
them. What a scenario measures against it is what the client and the HTTP stack cost alone:
no server can do better on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn

from app.stream.sse import frame
from bench.graphs import emit_output, one_output

READY_LINE = "floor server ready: "
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
JSON_HEADERS = [(b"content-type", b"application/json")]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

# Outputs of created runs, until joined.
_outputs: dict[str, Any] = {}


def output_of(assistant: str, values: dict[str, Any]) -> Any:
    if assistant == "one":
        return one_output(values["token"])
    if assistant == "emit":
        return emit_output(values["token"], values.get("events", 10), values.get("delay", 0.0))
    return None


def event(name: str, data: Any, seq: int | None = None) -> bytes:
    """One SSE frame, through Runyard's own framing."""
    return frame(name, orjson.dumps(data), None if seq is None else str(seq))


async def read_body(receive: Receive) -> Any:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return orjson.loads(b"".join(chunks) or b"{}")


async def answer(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream(send: Send, body: dict[str, Any]) -> None:
    """`emit`'s frames: metadata, the input's values, each custom event after the graph's own
    sleep, the final values; the stream modes the bench asks for (custom and values)."""
    values = body.get("input") or {}
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})

    async def write(chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    await write(event("metadata", {"run_id": str(uuid.uuid4()), "attempt": 1}))
    await write(event("values", values, 1))
    seq = 1
    if body.get("assistant_id") == "emit":
        token, events = values["token"], values.get("events", 10)
        delay = values.get("delay", 0.0)
        for i in range(1, events + 1):
            if delay:
                await asyncio.sleep(delay)
            seq += 1
            await write(event("custom", {"token": token, "seq": i, "of": events}, seq))
    await write(event("values", output_of(body["assistant_id"], values), seq + 1))
    await send({"type": "http.response.body", "body": b""})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            print(READY_LINE, flush=True)
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/ok":
        return await answer(send, 200, {"ok": True})
    if method == "GET" and path.endswith("/join"):
        run_id = path.split("/")[-2]
        return await answer(send, 200, _outputs.pop(run_id, None))
    if method != "POST":
        return await answer(send, 404, {"detail": "Not found"})
    body = await read_body(receive)
    values = body.get("input") or {}
    if path == "/runs/stream":
        return await stream(send, body)
    if path == "/runs/wait":
        return await answer(send, 200, output_of(body["assistant_id"], values))
    if path == "/runs":
        run_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
        _outputs[run_id] = output_of(body["assistant_id"], values)
        run = {"run_id": run_id, "thread_id": thread_id, "status": "pending"}
        return await answer(send, 200, run)
    return await answer(send, 404, {"detail": "Not found"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
