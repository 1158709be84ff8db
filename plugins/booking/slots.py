"""Pure time arithmetic of the booking plugin: bookable days, start times, free resources.

Nothing here touches a database; :mod:`plugins.booking.service` feeds it the
holds it read. Local times are in the tenant's zone; everything returned is
aware UTC unless named ``local``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from plugins.booking.config import BookingSettings, TableSpec

__all__ = [
    "Allocation",
    "Span",
    "by_resource",
    "day_problem",
    "day_window",
    "free_allocations",
    "largest_party",
    "overlaps",
    "start_times",
    "table_allocations",
]


class Span(msgspec.Struct, frozen=True):
    """A held interval of one resource, buffers included (UTC, half-open)."""

    resource_id: int
    starts_at: datetime
    ends_at: datetime


class Allocation(msgspec.Struct, frozen=True):
    """Resources that together serve one booking.

    Attributes:
        codes: resource codes (one table, two joined tables, or one staff member).
        seats: seats they offer together (1 for staff).
    """

    codes: tuple[str, ...]
    seats: int


def day_problem(settings: BookingSettings, tz: ZoneInfo, day: date, now: datetime) -> str | None:
    """Why ``day`` cannot be booked, or None when it can.

    Returns:
        ``"past"``, ``"too_far"``, ``"closed"`` or None.
    """
    today = now.astimezone(tz).date()
    if day < today:
        return "past"
    if day > today + timedelta(days=settings.days_ahead):
        return "too_far"
    if day in settings.closed_dates or settings.hours_for(day.weekday()) is None:
        return "closed"
    return None


def day_window(
    settings: BookingSettings, tz: ZoneInfo, day: date
) -> tuple[datetime, datetime] | None:
    """Opening and closing moment of ``day`` as aware UTC datetimes, or None when closed."""
    hours = settings.hours_for(day.weekday())
    if hours is None or day in settings.closed_dates:
        return None
    opens = datetime.combine(day, hours.opens, tzinfo=tz)
    # Wall-clock arithmetic on an aware datetime: "10:00-22:00" stays 22:00 on DST days.
    closes = opens + timedelta(minutes=hours.closes_after_minutes)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def start_times(
    settings: BookingSettings,
    tz: ZoneInfo,
    day: date,
    duration_minutes: int,
    earliest: datetime | None = None,
) -> list[datetime]:
    """Offered start times of ``day``: every slot step from opening that ends by closing.

    Args:
        settings: the tenant's booking settings.
        tz: the tenant's zone.
        day: local date.
        duration_minutes: length of the visit (buffers are outside opening hours' concern).
        earliest: drop starts before this moment (minimum notice), UTC.

    Returns:
        Aware UTC datetimes, ascending; empty on closed days.
    """
    hours = settings.hours_for(day.weekday())
    if hours is None or day in settings.closed_dates:
        return []
    opens = datetime.combine(day, hours.opens, tzinfo=tz)
    result = []
    offset = 0
    while offset + duration_minutes <= hours.closes_after_minutes:
        moment = (opens + timedelta(minutes=offset)).astimezone(UTC)
        if earliest is None or moment >= earliest:
            result.append(moment)
        offset += settings.slot_step_minutes
    return result


def overlaps(spans: Iterable[Span], start: datetime, end: datetime) -> bool:
    """True when any of ``spans`` (one resource's) overlaps ``[start, end)``."""
    return any(s.starts_at < end and s.ends_at > start for s in spans)


def by_resource(spans: Iterable[Span]) -> dict[int, list[Span]]:
    """Group spans by resource id, so a free check reads only that resource's spans."""
    grouped: dict[int, list[Span]] = {}
    for span in spans:
        grouped.setdefault(span.resource_id, []).append(span)
    return grouped


def table_allocations(tables: Sequence[TableSpec], party_size: int) -> list[Allocation]:
    """Ways to seat ``party_size``: single tables, then joinable pairs, smallest fit first.

    Pairs come from ``combinable_with`` (either side declaring it is enough);
    larger groups are not formed.
    """
    singles = [Allocation((t.id,), t.seats) for t in tables if t.seats >= party_size]
    by_code = {t.id: t for t in tables}
    pairs: dict[tuple[str, ...], Allocation] = {}
    for table in tables:
        for other_code in table.combinable_with:
            other = by_code.get(other_code)
            if other is None:
                continue
            codes = tuple(sorted((table.id, other.id)))
            seats = table.seats + other.seats
            if seats >= party_size and codes not in pairs:
                pairs[codes] = Allocation(codes, seats)
    ordered_singles = sorted(singles, key=lambda a: (a.seats, a.codes))
    ordered_pairs = sorted(pairs.values(), key=lambda a: (a.seats, a.codes))
    return ordered_singles + ordered_pairs


def largest_party(tables: Sequence[TableSpec]) -> int:
    """The most guests one allocation (a table or a joinable pair) can seat."""
    options = table_allocations(tables, 1)
    return max((a.seats for a in options), default=0)


def free_allocations(
    allocations: Sequence[Allocation],
    ids: Mapping[str, int],
    spans: Mapping[int, Sequence[Span]],
    start: datetime,
    end: datetime,
) -> list[Allocation]:
    """The allocations all of whose resources are free for ``[start, end)`` (buffers included).

    Args:
        allocations: candidates, in preference order (kept).
        ids: resource code -> id; an allocation naming an unknown code is skipped.
        spans: held spans by resource id (:func:`by_resource`).
        start / end: the held window of the would-be booking, UTC.
    """
    free = []
    for allocation in allocations:
        resource_ids = [ids.get(code) for code in allocation.codes]
        if any(rid is None for rid in resource_ids):
            continue
        if not any(
            overlaps(spans.get(rid, ()), start, end) for rid in resource_ids if rid is not None
        ):
            free.append(allocation)
    return free
