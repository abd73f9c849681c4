"""JSON containment filters (`metadata @> {...}`) in both dialects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal, true
from sqlalchemy.sql.elements import ColumnClause

from app import serde


def json_contains(column: Any, wanted: dict[str, Any] | None, *, postgres: bool) -> ColumnElement:
    if not wanted:
        return true()
    if postgres:
        return column.op("@>")(func.cast(literal(serde.dumps_str(wanted)), column.type))
    clauses = []
    for key, value in wanted.items():
        path = '$."' + key.replace('"', '""') + '"'
        if isinstance(value, bool | int | float | str) or value is None:
            extracted = func.json_extract(column, path)
            clauses.append(extracted.is_(None) if value is None else extracted == value)
        else:
            clauses.append(
                func.json(func.json_extract(column, path)) == func.json(serde.dumps_str(value))
            )
    out: ColumnElement = clauses[0]
    for clause in clauses[1:]:
        out = out & clause
    return out


__all__ = ["json_contains", "ColumnClause"]
