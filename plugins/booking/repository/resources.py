"""Booking repository: resources and services (sync from config, ids, current holds)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

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
