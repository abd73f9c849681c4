"""SQL statements and Redis commands per run, counted by Postgres and Redis themselves:
`python -m bench.statements`.

Starts a private Postgres cluster with pg_stat_statements, `runyard serve --workers 2` on it
(and the machine's Redis under a fresh prefix), warms up, resets the counters, then runs
sequential runs (stateless; `--kind thread`: a new thread, then a run on it) and prints the
writing transactions per run (each commit of one waits for a WAL flush), each statement's calls
and execution time per run, then each Redis command's calls per run (from INFO commandstats,
so anything else using the machine's Redis at the same time is counted too). Statements and
commands of idle workers polling during the same time are included, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import re

import psycopg
import redis

from bench.graphs import emit_input, emit_output, one_output
from bench.measure import Measurement, StreamTally, client
from bench.scenarios.base import token
from bench.servers import PRODUCTION_WORKERS, RunyardProcess
from bench.services import REDIS_URL, PrivatePostgres, redis_prefix, scratch_database

# Transactions that wrote (were given a transaction id), each waiting for a WAL flush at its
# commit; the cluster is the server's alone. This reading takes one id itself.
XID = "SELECT txid_current()"

STATEMENTS = """
SELECT calls, total_exec_time, query FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
ORDER BY calls DESC, total_exec_time DESC
"""


async def drive(url: str, kind: str, runs: int, m: Measurement) -> None:
    sdk = client(url)
    try:
        for _ in range(runs):
            value = token()
            if kind == "wait":
                out = await sdk.runs.wait(None, "one", input={"token": value})
                if out != one_output(value):
                    m.fail(f"runs.wait answered {out}")
                continue
            if kind == "thread":
                thread = await sdk.threads.create()
                out = await sdk.runs.wait(thread["thread_id"], "one", input={"token": value})
                if out != one_output(value):
                    m.fail(f"runs.wait on a thread answered {out}")
                continue
            if kind == "background":
                run = await sdk.runs.create(
                    None, "one", input={"token": value}, on_completion="keep"
                )
                out = await sdk.runs.join(run["thread_id"], run["run_id"])
                if out != one_output(value):
                    m.fail(f"runs.join answered {out}")
                continue
            tally = StreamTally(value, 10)
            async for part in sdk.runs.stream(
                None, "emit", input=emit_input(value, 10), stream_mode=["custom", "values"]
            ):
                tally.feed(part.event, part.data, part.id)
            tally.verify(m, output=emit_output(value, 10))
    finally:
        await sdk.aclose()


def redis_commands() -> dict[str, int]:
    """Calls per command since the Redis server started (scripts count as evalsha)."""
    with redis.Redis.from_url(REDIS_URL) as r:
        stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__)
    kinds = ["wait", "stream", "background", "thread"]
    parser.add_argument("--kind", choices=kinds, default="wait")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    m = Measurement()
    settings = ("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
    with (
        PrivatePostgres(300, *settings) as cluster,
        scratch_database("127.0.0.1", cluster.port) as uri,
        redis_prefix() as prefix,
    ):
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        env = {"DATABASE_URI": uri, "REDIS_URI": REDIS_URL, "REDIS_KEY_PREFIX": prefix}
        server = RunyardProcess("serve", env, workers=PRODUCTION_WORKERS)
        try:
            server.start()
            asyncio.run(drive(server.url, args.kind, 20, m))
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
                xid_before = conn.execute(XID).fetchone()
            commands_before = redis_commands()
            asyncio.run(drive(server.url, args.kind, args.runs, m))
            commands = redis_commands()
            with psycopg.connect(uri, autocommit=True) as conn:
                rows = conn.execute(STATEMENTS).fetchall()
                xid_after = conn.execute(XID).fetchone()
        finally:
            server.stop()
    total = sum(int(r[0]) for r in rows)
    print(f"{args.runs} sequential {args.kind} runs: {total / args.runs:.1f} statements per run")
    assert xid_before is not None and xid_after is not None
    writes = int(xid_after[0]) - int(xid_before[0]) - 1
    print(f"{writes / args.runs:.2f} writing transactions (commits that flush the WAL) per run")
    print(f"{'calls/run':>9}  {'ms/run':>7}  statement")
    for calls, ms, query in rows:
        text = re.sub(r"\s+", " ", query).strip()
        print(f"{calls / args.runs:9.2f}  {ms / args.runs:7.3f}  {text[:110]}")
    # INFO itself is counted once in the second reading.
    commands["info"] = commands.get("info", 0) - 1
    counted = {
        name: calls - commands_before.get(name, 0)
        for name, calls in commands.items()
        if calls > commands_before.get(name, 0)
    }
    print(f"Redis: {sum(counted.values()) / args.runs:.1f} commands per run")
    print(f"{'calls/run':>9}  command")
    for name, calls in sorted(counted.items(), key=lambda kv: -kv[1]):
        print(f"{calls / args.runs:9.2f}  {name}")
    for error in m.errors:
        print(f"check failed: {error}")
    return 1 if m.error_count else 0


if __name__ == "__main__":
    raise SystemExit(main())
