"""Where a database's schema stands against the migrations this version of Runyard ships."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from app.store.db import alembic_config

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: no Runyard schema at all (a fresh database)
    head: str
    pending: list[str]  # revisions `runyard migrate` would apply, oldest first
    known: bool  # False: a newer Runyard migrated this database

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def _scripts(url: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url))


def schema_state(conn: Connection, url: str) -> SchemaState:
    """Read Alembic's recorded revision over a sync connection (`AsyncConnection.run_sync`)."""
    from alembic.runtime.migration import MigrationContext

    scripts = _scripts(url)
    head = scripts.get_current_head()
    assert head is not None, "migrations/ holds no revision"
    current = MigrationContext.configure(conn).get_current_revision()
    ordered = [s.revision for s in scripts.walk_revisions("base", "heads")]  # newest first
    known = current is None or current in ordered
    if not known:
        pending: list[str] = []
    elif current is None:
        pending = list(reversed(ordered))
    else:
        pending = list(reversed(ordered[: ordered.index(current)]))
    return SchemaState(current=current, head=head, pending=pending, known=known)
