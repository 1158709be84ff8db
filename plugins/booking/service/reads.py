"""Reading bookings: one, a local day's, a customer's upcoming ones, a day's counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import msgspec

from core import Tenant
from core.errors import BadRequest, NotFound
from plugins.booking import repository as repo
from plugins.booking.service._common import _day_bounds, _now, _view
from plugins.booking.views import PLUGIN, BookingView, DailyStats, settings_of

__all__ = ["bookings_on", "daily_stats", "get_booking", "upcoming_for"]


async def get_booking(
    tenant: Tenant, booking_id: int, *, owner_id: int | None = None
) -> BookingView:
    """One booking; with ``owner_id``, only if that user made it.

    Raises:
        NotFound: ``booking.not_found``, no such booking (or not the owner's).
    """
    async with tenant.db.acquire() as conn:
        row = await repo.fetch_booking(conn, booking_id)
    if row is None or (owner_id is not None and row["user_id"] != owner_id):
        raise NotFound("booking.not_found", f"no booking {booking_id}")
    return _view(tenant, row)


async def bookings_on(
    tenant: Tenant, day: date, statuses: Sequence[str] | None = None
) -> list[BookingView]:
    """Bookings starting on local ``day``, optionally only in ``statuses``.

    Raises:
        BadRequest: ``booking.status``, a status the tenant's machine does not have.
    """
    machine = tenant.statuses[PLUGIN]
    for status in statuses or ():
        if status not in machine.states:
            raise BadRequest(
                "booking.status", f"unknown status {status!r} (known: {', '.join(machine.states)})"
            )
    start, end = _day_bounds(tenant, day)
    async with tenant.db.acquire() as conn:
        rows = await repo.bookings_between(conn, start, end, statuses or None)
    return [_view(tenant, r) for r in rows]


async def upcoming_for(tenant: Tenant, user_id: int) -> list[BookingView]:
    """A customer's bookings still ahead and holding their time."""
    settings = settings_of(tenant)
    machine = tenant.statuses[PLUGIN]
    excluded = [s for s in machine.states if s in settings.released_statuses or machine.is_final(s)]
    async with tenant.db.acquire() as conn:
        rows = await repo.upcoming_for_user(conn, user_id, _now(), excluded)
    return [_view(tenant, r) for r in rows]


async def daily_stats(tenant: Tenant, day: date) -> DailyStats:
    """The :class:`DailyStats` of local ``day``, from one aggregate query."""
    settings = settings_of(tenant)
    start, end = _day_bounds(tenant, day)
    async with tenant.db.acquire() as conn:
        row = await repo.daily_stats(
            conn, start, end, settings.released_statuses, settings.no_show_status
        )
    return DailyStats(
        date=day,
        bookings=row["bookings"],
        covers=row["covers"],
        no_shows=row["no_shows"],
        per_status=msgspec.json.decode(row["per_status"]),
    )
