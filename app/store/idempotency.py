"""Idempotency keys: the same key, within its lifetime, names the same run."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.db import utcnow
from app.store.tables import idempotency_keys


async def run_for_key(conn: AsyncConnection, key: str) -> str | None:
    query = select(idempotency_keys.c.run_id).where(
        idempotency_keys.c.key == key, idempotency_keys.c.expires_at > utcnow()
    )
    return (await conn.execute(query)).scalar()


async def remember(conn: AsyncConnection, key: str, run_id: str, ttl_secs: int) -> None:
    now = utcnow()
    # An expired key may still be there: replace it.
    await conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.key == key, idempotency_keys.c.expires_at <= now
        )
    )
    await conn.execute(
        insert(idempotency_keys).values(
            key=key, run_id=run_id, created_at=now, expires_at=now + timedelta(seconds=ttl_secs)
        )
    )


async def forget_expired(conn: AsyncConnection) -> int:
    result = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.expires_at <= utcnow())
    )
    return result.rowcount or 0
