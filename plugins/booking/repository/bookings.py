"""Booking repository: bookings, their history, per-user locks, reminders and feedback."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

BOOKING_COLUMNS = """
    b.id, b.status, b.user_id, b.customer_name, b.phone, b.party_size, b.service_code,
    b.starts_at, b.ends_at, b.buffer_before_minutes, b.buffer_after_minutes, b.price,
    b.comment, b.source, b.created_at, b.reminded_at,
    coalesce((SELECT array_agg(r.code ORDER BY r.code) FROM resource_holds h
              JOIN resources r ON r.id = h.resource_id WHERE h.booking_id = b.id), '{}') AS resources
"""


_CREATE_BOOKING = Path(__file__).parent.with_name("create_booking.sql").read_text(encoding="utf-8")


# ---------------------------------------------------------------- bookings


async def create_booking(
    conn: asyncpg.Connection,
    fields: dict[str, Any],
    held_resource_ids: Sequence[int],
    held_start: datetime,
    held_end: datetime,
    history: Sequence[tuple[str | None, str, str, int | None, str]],
) -> asyncpg.Record:
    """Insert a booking with its holds and history rows in one statement (``create_booking.sql``).

    Args:
        fields: status (the status after creation), user_id, customer_name,
            phone, party_size, service_code, starts_at, ends_at,
            buffer_before_minutes, buffer_after_minutes, price, comment, source.
        held_resource_ids: resources to hold for ``[held_start, held_end)``,
            sorted by id.
        history: ``(from_status, to_status, actor_role, actor_id, comment)``
            rows, in order.

    Returns:
        The booking, with the columns of :data:`BOOKING_COLUMNS`.

    Raises:
        asyncpg.ExclusionViolationError: a resource is already held then
            (``resource_holds_no_overlap``); the caller's transaction is aborted.
    """
    return await conn.fetchrow(
        _CREATE_BOOKING,
        fields["status"],
        fields["user_id"],
        fields["customer_name"],
        fields["phone"],
        fields["party_size"],
        fields["service_code"],
        fields["starts_at"],
        fields["ends_at"],
        fields["buffer_before_minutes"],
        fields["buffer_after_minutes"],
        fields["price"],
        fields["comment"],
        fields["source"],
        list(held_resource_ids),
        held_start,
        held_end,
        [h[0] for h in history],
        [h[1] for h in history],
        [h[2] for h in history],
        [h[3] for h in history],
        [h[4] for h in history],
    )


async def insert_history(
    conn: asyncpg.Connection,
    booking_id: int,
    from_status: str | None,
    to_status: str,
    actor_role: str,
    actor_id: int | None,
    comment: str = "",
) -> None:
    """Record one status change (``from_status`` None for the creation)."""
    await conn.execute(
        """
        INSERT INTO booking_history (booking_id, from_status, to_status, actor_role, actor_id, comment)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        booking_id,
        from_status,
        to_status,
        actor_role,
        actor_id,
        comment,
    )


async def fetch_booking(conn: asyncpg.Connection, booking_id: int) -> asyncpg.Record | None:
    """One booking with its held resource codes, or None."""
    return await conn.fetchrow(
        f"SELECT {BOOKING_COLUMNS} FROM bookings b WHERE b.id = $1", booking_id
    )


async def booking_for_update(conn: asyncpg.Connection, booking_id: int) -> asyncpg.Record | None:
    """Lock one booking row for a status change (inside a transaction), or None."""
    return await conn.fetchrow(
        "SELECT id, status, user_id, starts_at, source, service_code FROM bookings WHERE id = $1 FOR UPDATE",
        booking_id,
    )


async def set_status(conn: asyncpg.Connection, booking_id: int, status: str) -> None:
    """Write a booking's new status."""
    await conn.execute(
        "UPDATE bookings SET status = $2, updated_at = now() WHERE id = $1", booking_id, status
    )


async def bookings_between(
    conn: asyncpg.Connection, start: datetime, end: datetime, statuses: Sequence[str] | None = None
) -> list[asyncpg.Record]:
    """Bookings starting in ``[start, end)``, optionally only in ``statuses``, by start time."""
    return await conn.fetch(
        f"""
        SELECT {BOOKING_COLUMNS} FROM bookings b
        WHERE b.starts_at >= $1 AND b.starts_at < $2 AND ($3::text[] IS NULL OR b.status = ANY($3))
        ORDER BY b.starts_at, b.id
        """,
        start,
        end,
        list(statuses) if statuses is not None else None,
    )


def user_bookings_lock(schema: str, user_id: int) -> str:
    """The advisory lock key that serialises one user's booking creates (``transaction(lock=...)``).

    Advisory locks are database-wide, so the key names the schema as well as
    the user.
    """
    return f"tenantry:booking-cap:{schema}:{user_id}"


async def active_bookings_of_user(
    conn: asyncpg.Connection,
    user_id: int,
    start: datetime,
    end: datetime,
    excluded: Sequence[str],
) -> int:
    """How many of a user's bookings start in ``[start, end)`` and are not in ``excluded``."""
    return await conn.fetchval(
        """
        SELECT count(*) FROM bookings
        WHERE user_id = $1 AND starts_at >= $2 AND starts_at < $3
          AND NOT (status = ANY($4::text[]))
        """,
        user_id,
        start,
        end,
        list(excluded),
    )


async def upcoming_for_user(
    conn: asyncpg.Connection, user_id: int, now: datetime, excluded: Sequence[str], limit: int = 20
) -> list[asyncpg.Record]:
    """A user's bookings that start after ``now`` and are not in ``excluded`` statuses."""
    return await conn.fetch(
        f"""
        SELECT {BOOKING_COLUMNS} FROM bookings b
        WHERE b.user_id = $1 AND b.starts_at > $2 AND NOT (b.status = ANY($3::text[]))
        ORDER BY b.starts_at LIMIT $4
        """,
        user_id,
        now,
        list(excluded),
        limit,
    )


async def conflicting_bookings(
    conn: asyncpg.Connection, resource_ids_held: Sequence[int], start: datetime, end: datetime
) -> list[int]:
    """Ids of bookings whose active holds on these resources overlap ``[start, end)``."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT booking_id FROM resource_holds
        WHERE active AND booking_id IS NOT NULL AND resource_id = ANY($1::bigint[])
          AND starts_at < $3 AND ends_at > $2
        ORDER BY booking_id
        """,
        list(resource_ids_held),
        start,
        end,
    )
    return [r["booking_id"] for r in rows]


async def mark_reminded(
    conn: asyncpg.Connection, booking_id: int, statuses: Sequence[str]
) -> asyncpg.Record | None:
    """Claim a booking's reminder: set ``reminded_at`` once, only while in ``statuses``.

    The conditional UPDATE is the once-only guarantee: of two runs (two
    runtimes, a retried job) only one sees ``reminded_at IS NULL``.

    Returns:
        The booking row when this call claimed it, else None.
    """
    return await conn.fetchrow(
        """
        UPDATE bookings SET reminded_at = now()
        WHERE id = $1 AND reminded_at IS NULL AND status = ANY($2::text[])
          AND starts_at > now() AND user_id IS NOT NULL
        RETURNING id, user_id, starts_at, party_size, service_code
        """,
        booking_id,
        list(statuses),
    )


async def mark_feedback_requested(conn: asyncpg.Connection, booking_id: int) -> bool:
    """Claim the rating request of a booking; True only the first time."""
    status = await conn.execute(
        "UPDATE bookings SET feedback_requested_at = now() WHERE id = $1 AND feedback_requested_at IS NULL",
        booking_id,
    )
    return status.endswith(" 1")


async def insert_feedback(
    conn: asyncpg.Connection, booking_id: int, user_id: int, rating: int, text: str = ""
) -> bool:
    """Store a rating (1-5); False when this booking was already rated."""
    status = await conn.execute(
        """
        INSERT INTO feedback (booking_id, user_id, rating, text) VALUES ($1, $2, $3, $4)
        ON CONFLICT (booking_id) DO NOTHING
        """,
        booking_id,
        user_id,
        rating,
        text,
    )
    return status.endswith(" 1")
