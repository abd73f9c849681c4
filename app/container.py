"""Everything a process's services share, built once by the app's lifespan and passed around."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from app.agents.registry import GraphRegistry
from app.broker import Broker
from app.services.capacity import PendingCount
from app.services.outcomes import RunOutcomes
from app.settings import Settings
from app.store.assistants import Assistants
from app.store.checkpoint import Checkpoints
from app.store.crons import Crons
from app.store.db import Database
from app.store.longterm import LongTermStore
from app.store.runs import Runs
from app.store.threads import Threads


def make_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Container:
    settings: Settings
    db: Database
    broker: Broker
    registry: GraphRegistry
    checkpoints: Checkpoints
    longterm: LongTermStore | None = None  # LangGraph's store behind /store and the graphs
    owner_id: str = field(default_factory=make_owner_id)

    def __post_init__(self) -> None:
        self.runs = Runs(self.db)
        self.threads = Threads(self.db)
        self.assistants = Assistants(self.db)
        self.crons = Crons(self.db)
        self.outcomes = RunOutcomes()  # ends of the runs executing in this process
        self.pending = PendingCount(self.runs.count_pending)  # for MAX_PENDING_RUNS
