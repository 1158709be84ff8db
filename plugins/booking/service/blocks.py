"""Admins' blocks of a resource or the whole place: create, list, delete."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from core import Tenant
from core.errors import BadRequest, Conflict, NotFound
from plugins.booking import repository as repo
from plugins.booking.service._common import _day_bounds
from plugins.booking.views import BlockView

__all__ = ["create_block", "delete_block", "list_blocks"]


async def create_block(
    tenant: Tenant,
    start: datetime,
    end: datetime,
    resource: str | None,
    reason: str,
    created_by: str,
) -> BlockView:
    """Block ``[start, end)`` for one resource or (``resource`` None) the whole place.

    Raises:
        BadRequest: ``booking.naive_time``, ``booking.range`` (end before start,
            longer than 31 days), ``booking.reason``, ``booking.unknown_resource``.
        Conflict: ``booking.conflict``, bookings (or a block) already hold that
            time (``bookings`` lists their ids).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("booking.naive_time", "starts_at and ends_at need a UTC offset")
    try:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        # Stored, such a time could not be read back into a Python datetime.
        raise BadRequest(
            "booking.range", "starts_at and ends_at must fall within years 1-9999 in UTC"
        ) from None
    if end <= start:
        raise BadRequest("booking.range", "ends_at must be after starts_at")
    if end - start > timedelta(days=31):
        raise BadRequest("booking.range", "a block may last at most 31 days")
    if len(reason) > 200:
        raise BadRequest("booking.reason", "reason must be at most 200 characters")
    async with tenant.db.acquire() as conn:
        ids = await repo.resource_ids(conn)
    if resource is not None and resource not in ids:
        raise BadRequest("booking.unknown_resource", f"unknown table or staff {resource!r}")
    held = [ids[resource]] if resource is not None else sorted(ids.values())
    try:
        async with tenant.db.transaction() as conn:
            block_id = await repo.insert_blocked_slot(
                conn, ids[resource] if resource else None, start, end, reason, created_by
            )
            await repo.insert_holds(conn, held, start, end, blocked_slot_id=block_id)
    except asyncpg.ExclusionViolationError:
        async with tenant.db.acquire() as conn:
            conflicts = await repo.conflicting_bookings(conn, held, start, end)
        raise Conflict(
            "booking.conflict",
            "bookings or another block already hold this time",
            bookings=conflicts,
        ) from None
    async with tenant.db.acquire() as conn:
        return _block_view(await repo.blocked_slot(conn, block_id))


def _block_view(row: asyncpg.Record) -> BlockView:
    return BlockView(
        id=row["id"],
        resource=row["resource"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        reason=row["reason"],
        created_by=row["created_by"],
    )


async def list_blocks(tenant: Tenant, day: date) -> list[BlockView]:
    """Blocks overlapping local ``day``."""
    start, end = _day_bounds(tenant, day)
    async with tenant.db.acquire() as conn:
        return [_block_view(r) for r in await repo.list_blocked_slots(conn, start, end)]


async def delete_block(tenant: Tenant, block_id: int) -> None:
    """Remove a block and free its time.

    Raises:
        NotFound: ``booking.not_found``, no such block.
    """
    async with tenant.db.transaction() as conn:
        if not await repo.delete_blocked_slot(conn, block_id):
            raise NotFound("booking.not_found", f"no blocked slot {block_id}")
