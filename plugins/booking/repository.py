"""SQL of the booking plugin: small named functions over asyncpg, unqualified table names.

Every function takes a connection whose ``search_path`` is the tenant schema
(``tenant.db.acquire()`` / ``tenant.db.transaction()``). Times are timestamptz
(UTC); money is bigint minor units.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

__all__ = [
    "BOOKING_COLUMNS",
    "activate_holds",
    "active_bookings_of_user",
    "blocked_slot",
    "booking_for_update",
    "bookings_between",
    "conflicting_bookings",
    "create_booking",
    "daily_stats",
    "delete_blocked_slot",
    "fetch_booking",
    "insert_blocked_slot",
    "insert_feedback",
    "insert_history",
    "insert_holds",
    "list_blocked_slots",
    "mark_feedback_requested",
    "mark_reminded",
    "release_holds",
    "resource_ids",
    "resources_and_holds",
    "set_status",
    "sync_resources",
    "sync_services",
    "upcoming_for_user",
    "user_bookings_lock",
]

BOOKING_COLUMNS = """
    b.id, b.status, b.user_id, b.customer_name, b.phone, b.party_size, b.service_code,
    b.starts_at, b.ends_at, b.buffer_before_minutes, b.buffer_after_minutes, b.price,
    b.comment, b.source, b.created_at, b.reminded_at,
    coalesce((SELECT array_agg(r.code ORDER BY r.code) FROM resource_holds h
              JOIN resources r ON r.id = h.resource_id WHERE h.booking_id = b.id), '{}') AS resources
"""


_CREATE_BOOKING = Path(__file__).with_name("create_booking.sql").read_text(encoding="utf-8")


# ---------------------------------------------------------------- resources


async def sync_resources(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, int, str, list[str]]]
) -> None:
    """Upsert tables/staff from the tenant file and deactivate the ones no longer listed.

    Args:
        rows: ``(code, kind, name, seats, zone, combinable_with)`` per resource.
    """
    await conn.executemany(
        """
        INSERT INTO resources (code, kind, name, seats, zone, combinable_with, active)
        VALUES ($1, $2, $3, $4, $5, $6, true)
        ON CONFLICT (code) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name,
            seats = EXCLUDED.seats, zone = EXCLUDED.zone,
            combinable_with = EXCLUDED.combinable_with, active = true
        """,
        rows,
    )
    await conn.execute(
        "UPDATE resources SET active = false WHERE NOT (code = ANY($1::text[]))",
        [r[0] for r in rows],
    )


async def sync_services(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, int, int, list[str]]]
) -> None:
    """Upsert services from the tenant file and deactivate the ones no longer listed.

    Args:
        rows: ``(code, name, duration_minutes, price minor units, staff_codes)``.
    """
    await conn.executemany(
        """
        INSERT INTO services (code, name, duration_minutes, price, staff_codes, active)
        VALUES ($1, $2, $3, $4, $5, true)
        ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name,
            duration_minutes = EXCLUDED.duration_minutes, price = EXCLUDED.price,
            staff_codes = EXCLUDED.staff_codes, active = true
        """,
        rows,
    )
    await conn.execute(
        "UPDATE services SET active = false WHERE NOT (code = ANY($1::text[]))",
        [r[0] for r in rows],
    )


async def resource_ids(conn: asyncpg.Connection) -> dict[str, int]:
    """Active resources as ``code -> id``."""
    rows = await conn.fetch("SELECT code, id FROM resources WHERE active")
    return {r["code"]: r["id"] for r in rows}


async def resources_and_holds(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> tuple[dict[str, int], list[asyncpg.Record]]:
    """Active resources and the active holds overlapping ``[start, end)``, in one query.

    Returns:
        ``(code -> id, holds)``; each hold has ``resource_id, starts_at, ends_at``.
    """
    rows = await conn.fetch(
        """
        SELECT code, id AS resource_id, NULL::timestamptz AS starts_at, NULL::timestamptz AS ends_at
        FROM resources WHERE active
        UNION ALL
        SELECT NULL, resource_id, starts_at, ends_at FROM resource_holds
        WHERE active AND starts_at < $2 AND ends_at > $1
        """,
        start,
        end,
    )
    ids = {r["code"]: r["resource_id"] for r in rows if r["code"] is not None}
    return ids, [r for r in rows if r["code"] is None]


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


# ---------------------------------------------------------------- stats


async def daily_stats(
    conn: asyncpg.Connection, start: datetime, end: datetime, released: Sequence[str], no_show: str
) -> asyncpg.Record:
    """One aggregate over bookings starting in ``[start, end)``.

    Returns:
        ``bookings`` (all), ``covers`` (guests of bookings not in ``released``),
        ``no_shows`` (bookings in ``no_show``), ``per_status`` (JSON object
        status -> count, as text).
    """
    return await conn.fetchrow(
        """
        SELECT coalesce(sum(n), 0)::bigint AS bookings,
               coalesce(sum(guests) FILTER (WHERE NOT (status = ANY($3::text[]))), 0)::bigint AS covers,
               coalesce(sum(n) FILTER (WHERE status = $4), 0)::bigint AS no_shows,
               coalesce(json_object_agg(status, n), '{}')::text AS per_status
        FROM (SELECT status, count(*) AS n, sum(party_size) AS guests FROM bookings
              WHERE starts_at >= $1 AND starts_at < $2 GROUP BY status) AS by_status
        """,
        start,
        end,
        list(released),
        no_show,
    )


# ---------------------------------------------------------------- audience segments


async def guests_visited(conn: asyncpg.Connection, days: int, released: Sequence[str]) -> list[int]:
    """Telegram ids of guests with a booking that started in the last ``days`` days (not released)."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM bookings WHERE user_id IS NOT NULL"
        " AND starts_at <= now() AND starts_at > now() - make_interval(days => $1)"
        " AND NOT (status = ANY($2::text[]))",
        days,
        list(released),
    )
    return [r["user_id"] for r in rows]


async def guests_upcoming(conn: asyncpg.Connection, finished: Sequence[str]) -> list[int]:
    """Telegram ids of guests with a booking still to come, in none of the ``finished`` statuses."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM bookings WHERE user_id IS NOT NULL"
        " AND starts_at > now() AND NOT (status = ANY($1::text[]))",
        list(finished),
    )
    return [r["user_id"] for r in rows]
