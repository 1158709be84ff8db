"""Booking repository: blocked slots (time ranges a resource is unavailable)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

# ---------------------------------------------------------------- blocked slots


async def insert_blocked_slot(
    conn: asyncpg.Connection,
    resource_id: int | None,
    start: datetime,
    end: datetime,
    reason: str,
    created_by: str,
) -> int:
    """Insert a block (``resource_id`` None: the whole place); return its id."""
    return await conn.fetchval(
        """
        INSERT INTO blocked_slots (resource_id, starts_at, ends_at, reason, created_by)
        VALUES ($1, $2, $3, $4, $5) RETURNING id
        """,
        resource_id,
        start,
        end,
        reason,
        created_by,
    )


async def blocked_slot(conn: asyncpg.Connection, block_id: int) -> asyncpg.Record | None:
    """One block with its resource code (None for the whole place)."""
    return await conn.fetchrow(
        """
        SELECT s.id, r.code AS resource, s.starts_at, s.ends_at, s.reason, s.created_by
        FROM blocked_slots s LEFT JOIN resources r ON r.id = s.resource_id WHERE s.id = $1
        """,
        block_id,
    )


async def list_blocked_slots(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Blocks overlapping ``[start, end)``, by start time."""
    return await conn.fetch(
        """
        SELECT s.id, r.code AS resource, s.starts_at, s.ends_at, s.reason, s.created_by
        FROM blocked_slots s LEFT JOIN resources r ON r.id = s.resource_id
        WHERE s.starts_at < $2 AND s.ends_at > $1 ORDER BY s.starts_at, s.id
        """,
        start,
        end,
    )


async def delete_blocked_slot(conn: asyncpg.Connection, block_id: int) -> bool:
    """Delete a block and (by cascade) its holds; False when there was none."""
    status = await conn.execute("DELETE FROM blocked_slots WHERE id = $1", block_id)
    return status.endswith(" 1")
