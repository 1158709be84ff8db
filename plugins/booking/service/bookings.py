"""Writing bookings: create (validation, holds, the per-user cap) and status changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from core import Tenant
from core.errors import BadRequest, Conflict, NotFound
from core.kit.phones import InvalidPhoneNumber, normalize_phone, phone_region
from plugins.booking import repository as repo
from plugins.booking.config import BookingSettings
from plugins.booking.service._common import _day_bounds, _entity, _now, _view
from plugins.booking.service.availability import (
    _check_day,
    _held_window,
    _Plan,
    _plan,
    _resources_and_holds,
    next_free_times,
)
from plugins.booking.service.reminders import schedule_reminder
from plugins.booking.slots import Allocation, day_window, free_allocations, start_times
from plugins.booking.views import PLUGIN, BookingView, NewBooking, SlotTaken, settings_of

__all__ = ["change_status", "create_booking", "normalize_customer_phone"]

# How many free allocations one create tries before answering "slot taken".
_MAX_ATTEMPTS = 5


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

    Round trips of the usual create (one attempt, no per-user cap): BEGIN
    with SET LOCAL search_path (``tenant.db.transaction()``), one read of
    the resources and the holds around ``start``, one statement writing the
    booking, its holds and its history rows and answering the booking
    (``create_booking.sql``), and the outbox row with its NOTIFY
    (``tenant.publish``), COMMIT and the session reset in one query (so the
    pool's release sends nothing): 4. A user with a cap adds one: the count, after
    the user's lock (sent with BEGIN, ``transaction(lock=...)``), since only a
    later statement than the lock sees the bookings committed while it waited.
    The free allocations are read once, in the first attempt's transaction;
    an allocation taken since (an exclusion violation, or a deadlock
    PostgreSQL broke) aborts that transaction, and the next allocation is
    tried in a new one, at most ``_MAX_ATTEMPTS`` in all.
    """
    held_start, held_end = _held_window(settings, start, plan.duration_minutes)
    free: list[Allocation] | None = None
    ids: dict[str, int] = {}
    lock = None
    if user_id is not None and settings.max_active_bookings_per_user:
        lock = repo.user_bookings_lock(tenant.config.schema, user_id)
    for attempt in range(_MAX_ATTEMPTS):
        try:
            async with tenant.db.transaction(lock=lock) as conn:
                if free is None:
                    ids, spans = await _resources_and_holds(conn, held_start, held_end)
                    free = free_allocations(plan.allocations, ids, spans, held_start, held_end)
                if attempt >= len(free):
                    return None
                if user_id is not None and lock is not None:
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

    Runs in the creating transaction, which holds the user's lock
    (:func:`repository.user_bookings_lock`), so of concurrent creates by one
    user at most the cap commit.

    Raises:
        Conflict: 409 ``booking.too_many_bookings`` (``limit``, ``date``).
    """
    cap = settings.max_active_bookings_per_user
    machine = tenant.statuses[PLUGIN]
    inactive = {settings.completed_status, settings.no_show_status, *settings.released_statuses}
    excluded = [s for s in machine.states if s in inactive or machine.is_final(s)]
    day = start.astimezone(tenant.tz).date()
    day_start, day_end = _day_bounds(tenant, day)
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
                {
                    "from_status": current,
                    "to_status": target,
                    "actor_role": role,
                    "comment": comment,
                }
            )
            await tenant.publish("booking.status_changed", payload, conn=conn)
    except asyncpg.ExclusionViolationError:
        raise SlotTaken([]) from None
    if target == settings.confirmed_status:
        await schedule_reminder(tenant, view)
    return view, current
