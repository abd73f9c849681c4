"""Rows the integration tests put in the stores directly."""

from __future__ import annotations

import uuid
from typing import Any

from app.store.db import utcnow


def pending_run(thread_id: str, **fields: Any) -> dict[str, Any]:
    """A new pending run of `thread_id` with the least a run row needs; `fields` on top."""
    now = utcnow()
    return {
        "run_id": str(uuid.uuid4()),
        "thread_id": thread_id,
        "assistant_id": str(uuid.uuid4()),
        "created_at": now,
        "updated_at": now,
        "status": "pending",
        "metadata": {},
        "kwargs": {},
        "multitask_strategy": "enqueue",
        **fields,
    }
