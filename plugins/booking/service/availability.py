"""Slot planning (duration, candidate resources, price) and the free-time queries built on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from core import Tenant
from core.errors import BadRequest
from plugins.booking import repository as repo
from plugins.booking.config import BookingSettings
from plugins.booking.service._common import _now
from plugins.booking.slots import (
    Allocation,
    Span,
    by_resource,
    day_problem,
    free_allocations,
    largest_party,
    start_times,
    table_allocations,
)
from plugins.booking.views import AvailabilityResult, FreeSlot, settings_of

__all__ = ["availability", "next_free_times", "party_sizes_at", "services_at"]


# ---------------------------------------------------------------- planning


class _Plan(msgspec.Struct, frozen=True):
    duration_minutes: int
    allocations: list[Allocation]
    price: int
    party_size: int
    service: str | None


def _plan(
    settings: BookingSettings,
    *,
    party_size: int | None,
    service: str | None,
    staff: str | None,
    table: str | None,
) -> _Plan:
    """Resolve what a request needs: duration, candidate resources, price.

    Raises:
        BadRequest: ``booking.unknown_table``/``unknown_service``/``unknown_staff``,
            ``booking.party_size`` out of range, ``booking.wrong_kind`` (fields of the
            other kind), ``booking.service`` (missing).
    """
    if settings.kind == "tables":
        if service or staff:
            raise BadRequest(
                "booking.wrong_kind",
                "this place books tables: send party_size (and table), not service",
            )
        # Only an omitted party size means 1: availability refuses 0, so create does too.
        size = 1 if party_size is None else party_size
        if size < 1:
            raise BadRequest("booking.party_size", "party_size must be at least 1")
        if size > settings.max_party_size:
            raise BadRequest(
                "booking.party_size",
                f"party_size {size} is over the limit of {settings.max_party_size}",
            )
        if table is not None:
            spec = settings.table(table)
            if spec is None:
                known = ", ".join(t.id for t in settings.tables)
                raise BadRequest(
                    "booking.unknown_table", f"unknown table {table!r} (tables: {known})"
                )
            if spec.seats < size:
                raise BadRequest(
                    "booking.party_size", f"table {table!r} seats {spec.seats}, the party is {size}"
                )
            allocations = [Allocation((spec.id,), spec.seats)]
        else:
            allocations = table_allocations(settings.tables, size)
            if not allocations:
                raise BadRequest(
                    "booking.party_size",
                    f"no table seats {size}; the largest party is {largest_party(settings.tables)}",
                )
        return _Plan(settings.stay_minutes, allocations, 0, size, None)
    if table is not None:
        raise BadRequest(
            "booking.wrong_kind", "this place books services: send service (and staff), not table"
        )
    if party_size not in (None, 1):
        raise BadRequest("booking.party_size", "services are booked for one person (party_size 1)")
    if not service:
        raise BadRequest("booking.service", "service is required")
    spec = settings.service(service)
    if spec is None:
        known = ", ".join(s.id for s in settings.services)
        raise BadRequest(
            "booking.unknown_service", f"unknown service {service!r} (services: {known})"
        )
    members = settings.staff_for(spec)
    if staff is not None:
        if settings.staff_member(staff) is None:
            raise BadRequest("booking.unknown_staff", f"unknown staff {staff!r}")
        if staff not in [m.id for m in members]:
            raise BadRequest("booking.unknown_staff", f"{staff!r} does not do {service!r}")
        members = [m for m in members if m.id == staff]
    return _Plan(
        spec.duration_minutes, [Allocation((m.id,), 1) for m in members], spec.price, 1, spec.id
    )


async def _resources_and_holds(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> tuple[dict[str, int], dict[int, list[Span]]]:
    """Active resources (``code -> id``) and the holds overlapping ``[start, end)`` by resource."""
    ids, rows = await repo.resources_and_holds(conn, start, end)
    return ids, by_resource(Span(r["resource_id"], r["starts_at"], r["ends_at"]) for r in rows)


def _held_window(
    settings: BookingSettings, start: datetime, duration_minutes: int
) -> tuple[datetime, datetime]:
    return (
        start - timedelta(minutes=settings.buffer_before_minutes),
        start + timedelta(minutes=duration_minutes + settings.buffer_after_minutes),
    )


async def _free_by_start(
    tenant: Tenant, settings: BookingSettings, starts: Sequence[datetime], plan: _Plan
) -> dict[datetime, list[Allocation]]:
    """Free allocations for each start, from one read of ids and holds."""
    if not starts:
        return {}
    window_start, _ = _held_window(settings, min(starts), plan.duration_minutes)
    _, window_end = _held_window(settings, max(starts), plan.duration_minutes)
    async with tenant.db.acquire() as conn:
        ids, spans = await _resources_and_holds(conn, window_start, window_end)
    result = {}
    for start in starts:
        held_start, held_end = _held_window(settings, start, plan.duration_minutes)
        result[start] = free_allocations(plan.allocations, ids, spans, held_start, held_end)
    return result


def _check_day(settings: BookingSettings, tenant: Tenant, day: date, now: datetime) -> str | None:
    problem = day_problem(settings, tenant.tz, day, now)
    if problem == "past":
        raise BadRequest("booking.past", f"{day.isoformat()} is in the past")
    if problem == "too_far":
        raise BadRequest(
            "booking.too_far",
            f"{day.isoformat()} is more than {settings.days_ahead} days ahead",
            days=settings.days_ahead,
        )
    return problem


# ---------------------------------------------------------------- availability


async def availability(
    tenant: Tenant,
    day: date,
    *,
    party_size: int | None = None,
    service: str | None = None,
    staff: str | None = None,
    now: datetime | None = None,
) -> AvailabilityResult:
    """Free start times of ``day`` for a party size (tables) or a service (services).

    Raises:
        BadRequest: ``booking.past``, ``booking.too_far`` (beyond ``days_ahead``),
            or a bad party size / service / staff (see :func:`_plan`).
    """
    settings = settings_of(tenant)
    now = now or _now()
    closed = _check_day(settings, tenant, day, now)
    plan = _plan(settings, party_size=party_size, service=service, staff=staff, table=None)
    if closed:
        return AvailabilityResult(day, tenant.config.timezone, closed, [])
    earliest = now + timedelta(minutes=settings.min_notice_minutes)
    starts = start_times(settings, tenant.tz, day, plan.duration_minutes, earliest)
    free = await _free_by_start(tenant, settings, starts, plan)
    slots = [
        FreeSlot(
            starts_at=start,
            ends_at=start + timedelta(minutes=plan.duration_minutes),
            local_time=tenant.local_time(start).strftime("%H:%M"),
            resources=list(options[0].codes),
        )
        for start, options in free.items()
        if options
    ]
    return AvailabilityResult(day, tenant.config.timezone, None, slots)


async def next_free_times(
    tenant: Tenant, start: datetime, plan_args: dict[str, Any], limit: int = 5, days: int = 7
) -> list[datetime]:
    """Free starts nearest to ``start``: that day by distance, then the following days.

    Args:
        plan_args: ``party_size``, ``service``, ``staff``, ``table`` as in the request.
    """
    settings = settings_of(tenant)
    plan = _plan(settings, **plan_args)
    now = _now()
    earliest = now + timedelta(minutes=settings.min_notice_minutes)
    first_day = start.astimezone(tenant.tz).date()
    found: list[datetime] = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day_problem(settings, tenant.tz, day, now) is not None:
            continue
        starts = start_times(settings, tenant.tz, day, plan.duration_minutes, earliest)
        free = await _free_by_start(tenant, settings, starts, plan)
        candidates = [s for s, options in free.items() if options and s != start]
        candidates.sort(key=lambda s: abs((s - start).total_seconds()))
        found.extend(candidates[: limit - len(found)])
        if len(found) >= limit:
            break
    return found


async def party_sizes_at(tenant: Tenant, start: datetime) -> int:
    """The largest party that can still be seated at ``start`` (0: none)."""
    settings = settings_of(tenant)
    plan = _plan(settings, party_size=1, service=None, staff=None, table=None)
    free = await _free_by_start(tenant, settings, [start], plan)
    return min(max((a.seats for a in free[start]), default=0), settings.max_party_size)


async def services_at(tenant: Tenant, start: datetime) -> list[tuple[str, list[str]]]:
    """Services that fit at ``start`` with the staff free for each: ``[(service, [staff])]``."""
    settings = settings_of(tenant)
    result = []
    for service in settings.services:
        plan = _plan(settings, party_size=None, service=service.id, staff=None, table=None)
        starts = start_times(
            settings, tenant.tz, start.astimezone(tenant.tz).date(), plan.duration_minutes
        )
        if start not in starts:
            continue
        free = await _free_by_start(tenant, settings, [start], plan)
        if free[start]:
            result.append((service.id, [a.codes[0] for a in free[start]]))
    return result
