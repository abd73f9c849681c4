"""The `runyard` command: dev (embedded, one process), serve (Gunicorn), migrate, doctor, and
runs/threads administration straight against the database."""

from __future__ import annotations

import argparse

from app.cli import admin, doctor, server
from app.cli.server import serve_preflight

__all__ = ["build_parser", "main", "serve_preflight"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runyard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    server.add_parsers(sub)
    doctor.add_parser(sub)
    admin.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
