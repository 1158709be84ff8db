"""Business rules of the booking plugin, shared by the bot and the HTTP API.

Every refusal is one of the core's errors (:mod:`core.errors`: ``BadRequest``,
``NotFound``, ``Conflict``) with a stable code ``booking.<what>`` and plain
words, so the API answers it as a problem body and the bot with the text
``booking.error.<what>`` (``core.kit.error_text``). Status changes
go through ``tenant.statuses["booking"].check`` only; a
:class:`core.TransitionError` passes through untouched.

No double booking: each booking writes one ``resource_holds`` row per resource
it occupies, spanning its time plus buffers, in the same transaction as the
booking. The table's exclusion constraint refuses overlapping active holds;
PostgreSQL checks it against every committed *and in-flight* row (an inserter
that meets an uncommitted overlapping row waits for that transaction to end),
so at READ COMMITTED exactly one of any number of concurrent requests for the
same resource and time commits, and the others get ``ExclusionViolationError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from core import Tenant
from core.errors import BadRequest, Conflict, NotFound
from core.kit.phones import InvalidPhoneNumber, normalize_phone, phone_region
from plugins.booking import repository as repo
from plugins.booking.config import BookingSettings
from plugins.booking.slots import (
    Allocation,
    Span,
    by_resource,
    day_problem,
    day_window,
    free_allocations,
    largest_party,
    start_times,
    table_allocations,
)

__all__ = [
    "PLUGIN",
    "AvailabilityResult",
    "BlockView",
    "BookingView",
    "DailyStats",
    "FreeSlot",
    "NewBooking",
    "SlotTaken",
    "availability",
    "bookings_on",
    "change_status",
    "create_block",
    "create_booking",
    "daily_stats",
    "delete_block",
    "get_booking",
    "list_blocks",
    "next_free_times",
    "normalize_customer_phone",
    "party_sizes_at",
    "remindable_statuses",
    "send_reminder",
    "services_at",
    "settings_of",
    "upcoming_for",
]

PLUGIN = "booking"
# How many free allocations one create tries before answering "slot taken".
_MAX_ATTEMPTS = 5


class SlotTaken(Conflict):
    """409 ``booking.slot_taken``: the time is no longer free.

    Attributes:
        alternatives: the nearest free starts (UTC), also the ``alternatives``
            member of the problem body (ISO 8601).
    """

    def __init__(self, alternatives: list[datetime]):
        self.alternatives = alternatives
        super().__init__(
            "booking.slot_taken",
            "this time was just taken; pick one of the alternatives",
            alternatives=[a.isoformat() for a in alternatives],
        )


class NewBooking(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A booking request (API body and the bot's final step).

    Attributes:
        starts_at: start, ISO 8601 with a UTC offset, on a slot boundary.
        customer_name: 1-100 characters.
        phone: a phone number, with or without the country code (read in the
            tenant's region, ``core.kit.phone_region``); stored in E.164.
        party_size: guests (``kind: tables``), default 1.
        service: service id (``kind: services``).
        staff: staff id (``kind: services``); None picks any free one.
        table: table id (``kind: tables``); None picks the best free fit.
        comment: free text up to 500 characters.
    """

    starts_at: datetime
    customer_name: str
    phone: str
    party_size: int = 1
    service: str | None = None
    staff: str | None = None
    table: str | None = None
    comment: str = ""


class BookingView(msgspec.Struct):
    """A booking as the API returns it and events carry it.

    Attributes:
        id: booking id.
        status: current status.
        user_id: Telegram user id of the customer, None for staff-made bookings.
        customer_name / phone / comment: as given.
        party_size: guests (1 for services).
        service: service id or None.
        resources: table or staff ids it holds.
        starts_at / ends_at: UTC, without buffers.
        local_start: start in the tenant's zone, ``YYYY-MM-DD HH:MM``.
        price: minor currency units.
        source: ``bot``, ``api`` or ``webapp``.
        created_at: UTC.
    """

    id: int
    status: str
    user_id: int | None
    customer_name: str
    phone: str
    party_size: int
    service: str | None
    resources: list[str]
    starts_at: datetime
    ends_at: datetime
    local_start: str
    price: int
    comment: str
    source: str
    created_at: datetime


class FreeSlot(msgspec.Struct):
    """A free start time.

    Attributes:
        starts_at / ends_at: UTC, without buffers.
        local_time: ``HH:MM`` in the tenant's zone.
        resources: the tables or staff a booking would get (best fit).
    """

    starts_at: datetime
    ends_at: datetime
    local_time: str
    resources: list[str]


class AvailabilityResult(msgspec.Struct):
    """Free start times of one day.

    Attributes:
        date: the local date.
        timezone: the tenant's IANA zone.
        closed: ``closed`` when the place does not open that day, else None.
        slots: free starts, ascending.
    """

    date: date
    timezone: str
    closed: str | None
    slots: list[FreeSlot]


class DailyStats(msgspec.Struct):
    """Counts of one local day (``GET /stats``).

    Attributes:
        date: the local date.
        bookings: bookings starting that day, in any status.
        covers: guests of the bookings that still hold their time (released
            statuses excluded).
        no_shows: bookings in ``no_show_status``.
        per_status: status -> number of bookings.
    """

    date: date
    bookings: int
    covers: int
    no_shows: int
    per_status: dict[str, int]


class BlockView(msgspec.Struct):
    """An admin's block of a resource or the whole place.

    Attributes:
        id: block id.
        resource: the table or staff id, None for the whole place.
        starts_at / ends_at: UTC.
        reason: as given, up to 200 characters.
        created_by: ``api`` or ``telegram:<admin id>``.
    """

    id: int
    resource: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str


def settings_of(tenant: Tenant) -> BookingSettings:
    """The tenant's validated booking settings."""
    return tenant.settings_for(PLUGIN)


def _view(tenant: Tenant, row: asyncpg.Record) -> BookingView:
    return BookingView(
        id=row["id"],
        status=row["status"],
        user_id=row["user_id"],
        customer_name=row["customer_name"],
        phone=row["phone"],
        party_size=row["party_size"],
        service=row["service_code"],
        resources=list(row["resources"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        local_start=tenant.local_time(row["starts_at"]).strftime("%Y-%m-%d %H:%M"),
        price=row["price"],
        comment=row["comment"],
        source=row["source"],
        created_at=row["created_at"],
    )


def _now() -> datetime:
    return datetime.now(UTC)


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


# ---------------------------------------------------------------- create


def normalize_customer_phone(tenant: Tenant, phone: str) -> str:
    """A customer's phone in E.164, read in the tenant's region (``core.kit``).

    Raises:
        BadRequest: ``booking.phone``, not a valid phone number.
    """
    try:
        return normalize_phone(phone, phone_region(tenant.config.timezone, tenant.locale))
    except InvalidPhoneNumber as exc:
        raise BadRequest(
            "booking.phone", f"phone {phone!r} is not a phone number: {exc.reason}"
        ) from None


def _validate_contact(tenant: Tenant, request: NewBooking) -> tuple[str, str, str]:
    name = request.customer_name.strip()
    if not 1 <= len(name) <= 100:
        raise BadRequest("booking.customer_name", "customer_name must be 1-100 characters")
    # PostgreSQL text cannot hold NUL (U+0000): refused here with the field named.
    if "\x00" in name:
        raise BadRequest("booking.customer_name", "customer_name may not contain NUL characters")
    phone = normalize_customer_phone(tenant, request.phone)
    if len(request.comment) > 500:
        raise BadRequest("booking.comment", "comment must be at most 500 characters")
    if "\x00" in request.comment:
        raise BadRequest("booking.comment", "comment may not contain NUL characters")
    return name, phone, request.comment


def _start_and_day(
    tenant: Tenant, settings: BookingSettings, starts_at: datetime
) -> tuple[datetime, date]:
    """``starts_at`` in UTC and its local date in the tenant's zone.

    Raises:
        BadRequest: ``booking.past`` or ``booking.too_far`` (with ``days``) for
            a start whose UTC or local form falls outside Python's datetime
            range (years 1-9999): such a start is long past or far beyond
            ``days_ahead``, as availability answers for its date.
    """
    try:
        start = starts_at.astimezone(UTC)
        return start, start.astimezone(tenant.tz).date()
    except OverflowError:
        if starts_at.year <= 1:
            raise BadRequest("booking.past", f"{starts_at.isoformat()} is in the past") from None
        raise BadRequest(
            "booking.too_far",
            f"{starts_at.isoformat()} is more than {settings.days_ahead} days ahead",
            days=settings.days_ahead,
        ) from None


async def create_booking(
    tenant: Tenant, request: NewBooking, *, user_id: int | None, source: str, actor_role: str
) -> BookingView:
    """Validate a request and book it, or refuse it with nothing written.

    Args:
        tenant: the tenant.
        request: what to book.
        user_id: the Telegram customer, None for a staff-made booking.
        source: ``bot``, ``api`` or ``webapp``.
        actor_role: ``customer`` or ``admin``, recorded in the history.

    Returns:
        The booking, in the machine's initial status, or already in
        ``confirmed_status`` when ``confirmation_required`` is false.

    Raises:
        BadRequest: bad input, code ``booking.<what>``: ``starts_at`` (naive),
            ``past``, ``closed``, ``not_a_slot`` (outside opening hours or off the
            step), ``too_soon``, ``unknown_table``, ``party_size``, ``phone``,
            ``customer_name``, ``comment``...
        SlotTaken: 409 ``booking.slot_taken``, every fitting resource is held then.
    """
    settings = settings_of(tenant)
    machine = tenant.statuses[PLUGIN]
    if request.starts_at.tzinfo is None:
        raise BadRequest(
            "booking.starts_at", "starts_at needs a UTC offset (e.g. 2025-06-01T19:00:00+03:00)"
        )
    now = _now()
    start, day = _start_and_day(tenant, settings, request.starts_at)
    if start <= now:
        raise BadRequest("booking.past", f"{start.isoformat()} is in the past")
    if _check_day(settings, tenant, day, now) == "closed":
        raise BadRequest("booking.closed", f"closed on {day.isoformat()}")
    plan_args = {
        "party_size": request.party_size,
        "service": request.service,
        "staff": request.staff,
        "table": request.table,
    }
    plan = _plan(settings, **plan_args)
    name, phone, comment = _validate_contact(tenant, request)
    if start not in start_times(settings, tenant.tz, day, plan.duration_minutes):
        window = day_window(settings, tenant.tz, day)
        hours = settings.opening_hours.get(
            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()], ""
        )
        raise BadRequest(
            "booking.not_a_slot",
            f"{tenant.local_time(start):%H:%M} is not a start time: open {hours}, every "
            f"{settings.slot_step_minutes} min, the visit ({plan.duration_minutes} min) must end by closing",
            opens=window[0].isoformat() if window else None,
            time=f"{tenant.local_time(start):%H:%M}",
        )
    if start < now + timedelta(minutes=settings.min_notice_minutes):
        raise BadRequest(
            "booking.too_soon",
            f"bookings need {settings.min_notice_minutes} minutes of notice",
            minutes=settings.min_notice_minutes,
        )
    status = machine.initial
    confirm = not settings.confirmation_required and settings.confirmed_status != status
    history: list[tuple[str | None, str, str, int | None, str]] = [
        (None, status, actor_role, user_id, "")
    ]
    if confirm:
        history.append((status, settings.confirmed_status, "system", None, "auto-confirmed"))
    fields = {
        "status": settings.confirmed_status if confirm else status,
        "user_id": user_id,
        "customer_name": name,
        "phone": phone,
        "party_size": plan.party_size,
        "service_code": plan.service,
        "starts_at": start,
        "ends_at": start + timedelta(minutes=plan.duration_minutes),
        "buffer_before_minutes": settings.buffer_before_minutes,
        "buffer_after_minutes": settings.buffer_after_minutes,
        "price": plan.price,
        "comment": comment,
        "source": source,
    }
    view = await _book(
        tenant, settings, plan, start, fields, history, user_id=user_id, confirm=confirm
    )
    if view is None:
        raise SlotTaken(await next_free_times(tenant, start, plan_args))
    if view.status == settings.confirmed_status:
        await schedule_reminder(tenant, view)
    return view


async def _book(
    tenant: Tenant,
    settings: BookingSettings,
    plan: _Plan,
    start: datetime,
    fields: dict[str, Any],
    history: list[tuple[str | None, str, str, int | None, str]],
    *,
    user_id: int | None,
    confirm: bool,
) -> BookingView | None:
    """Hold the first free allocation of ``plan`` and write the booking; None when none is free.

    Round trips of the usual create (one attempt, no per-user cap): BEGIN,
    SET LOCAL search_path (both from ``tenant.db.transaction()``), one read of
    the resources and the holds around ``start``, one statement writing the
    booking, its holds and its history rows and answering the booking
    (``create_booking.sql``), the outbox row with its NOTIFY
    (``tenant.publish``), COMMIT, and the pool's reset on release: 7. A user
    with a cap adds two (the lock, then the count, which must be a later
    statement than the lock to see the bookings committed while it waited).
    The free allocations are read once, in the first attempt's transaction;
    an allocation taken since (an exclusion violation, or a deadlock
    PostgreSQL broke) aborts that transaction, and the next allocation is
    tried in a new one, at most ``_MAX_ATTEMPTS`` in all.
    """
    held_start, held_end = _held_window(settings, start, plan.duration_minutes)
    free: list[Allocation] | None = None
    ids: dict[str, int] = {}
    for attempt in range(_MAX_ATTEMPTS):
        try:
            async with tenant.db.transaction() as conn:
                if free is None:
                    ids, spans = await _resources_and_holds(conn, held_start, held_end)
                    free = free_allocations(plan.allocations, ids, spans, held_start, held_end)
                if attempt >= len(free):
                    return None
                if user_id is not None and settings.max_active_bookings_per_user:
                    await _check_user_cap(tenant, settings, conn, user_id, start)
                if confirm:
                    tenant.statuses[PLUGIN].check(
                        history[0][1], settings.confirmed_status, "system",
                        _entity(settings, fields["source"]),
                    )  # fmt: skip
                row = await repo.create_booking(
                    conn, fields, sorted(ids[c] for c in free[attempt].codes),
                    held_start, held_end, history,
                )  # fmt: skip
                view = _view(tenant, row)
                await tenant.publish("booking.created", msgspec.to_builtins(view), conn=conn)
                return view
        except (asyncpg.ExclusionViolationError, asyncpg.DeadlockDetectedError):
            # Taken by a concurrent request since we read the holds (or PostgreSQL
            # broke a wait cycle with it and rolled our attempt back): try the next.
            continue
    return None


async def _check_user_cap(
    tenant: Tenant,
    settings: BookingSettings,
    conn: asyncpg.Connection,
    user_id: int,
    start: datetime,
) -> None:
    """Refuse a booking that would give ``user_id`` more than the cap of active bookings that day.

    Runs in the creating transaction, after a lock per user, so of concurrent
    creates by one user at most the cap commit.

    Raises:
        Conflict: 409 ``booking.too_many_bookings`` (``limit``, ``date``).
    """
    cap = settings.max_active_bookings_per_user
    machine = tenant.statuses[PLUGIN]
    inactive = {settings.completed_status, settings.no_show_status, *settings.released_statuses}
    excluded = [s for s in machine.states if s in inactive or machine.is_final(s)]
    day = start.astimezone(tenant.tz).date()
    day_start, day_end = _day_bounds(tenant, day)
    await repo.lock_user_bookings(conn, tenant.config.schema, user_id)
    held = await repo.active_bookings_of_user(
        conn, user_id, max(day_start, _now()), day_end, excluded
    )
    if held >= cap:
        raise Conflict(
            "booking.too_many_bookings",
            f"user {user_id} already has {held} active bookings on {day.isoformat()}; "
            f"at most {cap} per day",
            limit=cap,
            date=day.isoformat(),
        )


def _entity(settings: BookingSettings, source: str) -> dict[str, Any]:
    """Fields a tenant's ``when:`` conditions may test."""
    return {"kind": settings.kind, "source": source}


# ---------------------------------------------------------------- reads


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


def _day_bounds(tenant: Tenant, day: date) -> tuple[datetime, datetime]:
    """Start and end (UTC) of local ``day``.

    Raises:
        BadRequest: ``booking.date_out_of_range``, the day's bounds fall outside
            Python's datetime range (years 1-9999), as the first and last days
            of that range do in most zones.
    """
    try:
        start = datetime.combine(day, datetime.min.time(), tzinfo=tenant.tz)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tenant.tz)
        return start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise BadRequest(
            "booking.date_out_of_range",
            f"{day.isoformat()} is too close to the ends of the calendar (years 1 and 9999)",
        ) from None


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


# ---------------------------------------------------------------- status changes


async def change_status(
    tenant: Tenant,
    booking_id: int,
    target: str,
    *,
    role: str,
    actor_id: int | None,
    comment: str = "",
    owner_id: int | None = None,
) -> tuple[BookingView, str]:
    """Move a booking to ``target`` as ``role`` and tell everyone concerned.

    Args:
        tenant: the tenant.
        booking_id: the booking.
        target: the requested status.
        role: ``customer``, ``admin`` or ``system``.
        actor_id: Telegram user id of the actor, None for API keys.
        comment: recorded in booking_history.
        owner_id: when set, only this customer's booking may be changed.

    Returns:
        ``(booking after the change, previous status)``.

    Raises:
        BadRequest: ``booking.comment`` over 500 characters.
        NotFound: ``booking.not_found``, unknown booking (or not the owner's).
        Conflict: ``booking.cancellation_cutoff``, a customer cancelling after
            the cutoff (with ``current`` and ``allowed``).
        TransitionError: the tenant's machine does not allow the move (409).
        SlotTaken: leaving a released status while the time was taken.
    """
    settings = settings_of(tenant)
    machine = tenant.statuses[PLUGIN]
    if len(comment) > 500:
        raise BadRequest("booking.comment", "comment must be at most 500 characters")
    try:
        async with tenant.db.transaction() as conn:
            row = await repo.booking_for_update(conn, booking_id)
            if row is None or (owner_id is not None and row["user_id"] != owner_id):
                raise NotFound("booking.not_found", f"no booking {booking_id}")
            current = row["status"]
            machine.check(current, target, role, _entity(settings, row["source"]))
            if role == "customer" and target == settings.cancelled_status:
                cutoff = row["starts_at"] - timedelta(minutes=settings.cancellation_cutoff_minutes)
                if _now() > cutoff:
                    raise Conflict(
                        "booking.cancellation_cutoff",
                        f"bookings can be cancelled up to {settings.cancellation_cutoff_minutes} "
                        "minutes before the start; please call us",
                        current=current,
                        allowed=[s for s in machine.allowed(current, role) if s != target],
                    )
            await repo.set_status(conn, booking_id, target)
            was_released = current in settings.released_statuses
            now_released = target in settings.released_statuses
            if now_released and not was_released:
                await repo.release_holds(conn, booking_id)
            elif was_released and not now_released:
                await repo.activate_holds(conn, booking_id)
            await repo.insert_history(conn, booking_id, current, target, role, actor_id, comment)
            view = _view(tenant, await repo.fetch_booking(conn, booking_id))
            payload = msgspec.to_builtins(view)
            payload.update(
                {"from_status": current, "to_status": target, "actor_role": role, "comment": comment}
            )
            await tenant.publish("booking.status_changed", payload, conn=conn)
    except asyncpg.ExclusionViolationError:
        raise SlotTaken([]) from None
    if target == settings.confirmed_status:
        await schedule_reminder(tenant, view)
    return view, current


# ---------------------------------------------------------------- reminders


def remindable_statuses(tenant: Tenant) -> list[str]:
    """Statuses in which a booking still gets its reminder (held, not final)."""
    settings = settings_of(tenant)
    machine = tenant.statuses[PLUGIN]
    return [
        s for s in machine.states if s not in settings.released_statuses and not machine.is_final(s)
    ]


async def schedule_reminder(tenant: Tenant, view: BookingView) -> bool:
    """Queue ``booking.remind`` for ``reminder_minutes`` before the start.

    Skipped (False) when reminders are off, the customer is unknown, or the
    moment has passed. The job key ``remind:<id>`` dedupes across runtimes.
    """
    settings = settings_of(tenant)
    if not settings.reminder_minutes or view.user_id is None:
        return False
    at = view.starts_at - timedelta(minutes=settings.reminder_minutes)
    if at <= _now():
        return False
    try:
        return await tenant.enqueue(
            "booking.remind", at=at, key=f"remind:{view.id}", booking_id=view.id
        )
    except RuntimeError:
        tenant.log.warning("booking_reminder_not_queued", booking_id=view.id, reason="no job queue")
        return False


async def send_reminder(tenant: Tenant, booking_id: int) -> bool:
    """Send a booking's reminder once, if it is still in a remindable status.

    Returns:
        True when this call sent it; False when cancelled, already sent or past.
    """
    from plugins.booking import notify  # bot texts and keyboards live with the bot side

    async with tenant.db.acquire() as conn:
        row = await repo.mark_reminded(conn, booking_id, remindable_statuses(tenant))
    if row is None:
        return False
    await notify.reminder(tenant, await get_booking(tenant, booking_id))
    return True


# ---------------------------------------------------------------- blocked slots


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
            "booking.conflict", "bookings or another block already hold this time", bookings=conflicts
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
