"""Booking repository: resource holds of a booking (insert, release, activate)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg


async def insert_holds(
    conn: asyncpg.Connection,
    resource_ids_held: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    booking_id: int | None = None,
    blocked_slot_id: int | None = None,
) -> None:
    """Hold each resource for ``[start, end)`` (buffers included) for a booking or a block.

    Raises:
        asyncpg.ExclusionViolationError: a resource is already held then
            (``resource_holds_no_overlap``); the caller's transaction is aborted.
    """
    await conn.executemany(
        """
        INSERT INTO resource_holds (resource_id, booking_id, blocked_slot_id, starts_at, ends_at)
        VALUES ($1, $2, $3, $4, $5)
        """,
        [(rid, booking_id, blocked_slot_id, start, end) for rid in resource_ids_held],
    )


async def release_holds(conn: asyncpg.Connection, booking_id: int) -> None:
    """Free the time a booking held (it was cancelled or not shown)."""
    await conn.execute("UPDATE resource_holds SET active = false WHERE booking_id = $1", booking_id)


async def activate_holds(conn: asyncpg.Connection, booking_id: int) -> None:
    """Hold a booking's time again (moved out of a released status).

    Raises:
        asyncpg.ExclusionViolationError: the time was taken meanwhile.
    """
    await conn.execute("UPDATE resource_holds SET active = true WHERE booking_id = $1", booking_id)
