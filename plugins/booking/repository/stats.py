"""Booking repository: daily stats and audience segment queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

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
