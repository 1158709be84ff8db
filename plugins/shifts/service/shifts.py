"""Shifts: clock-in, clock-out with the sales, status changes and corrections with history.

Every change locks the shift row (``SELECT ... FOR UPDATE``) and goes through
the tenant's machine (``statuses.shift``) inside one transaction, so of two
conflicting changes one commits and the other sees the new state. The pay is
computed by :func:`plugins.shifts.service.commission.shift_pay` and stored with
the shift (and its bonuses), so reports add stored numbers. A correction
records who changed what (field -> from/to) and why, and recomputes the pay.

Events: ``shifts.opened``, ``shifts.closed``, ``shifts.status_changed``,
``shifts.corrected`` (payload: ``shift_id``, ``employee_id`` and what changed;
amounts in minor units). Refusals are the core's errors with codes
``shifts.<what>``; the bot shows ``shifts.error.<what>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from core import TransitionError
from core.errors import BadRequest, Conflict, Forbidden, NotFound
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting
from plugins.shifts.service._unit import Change, change
from plugins.shifts.service.commission import ShiftPay, shift_pay
from plugins.shifts.service.employees import settings_of
from plugins.shifts.service.shift_reads import (
    commission_breakdown,
    list_shifts,
    load_shift,
    month_of,
    next_month,
    shift_history,
    shift_view,
    views,
)

if TYPE_CHECKING:
    from core import Tenant
    from plugins.shifts.config import ShiftsSettings

__all__ = [
    "MAX_REASON",
    "change_status",
    "close_shift",
    "commission_breakdown",
    "correct_shift",
    "list_shifts",
    "load_shift",
    "month_of",
    "next_month",
    "normalize_sales",
    "open_shift",
    "record_shift",
    "shift_history",
]

MAX_REASON = 500
_MAX_SALES = 10**12


def normalize_sales(
    settings: ShiftsSettings, sales: Mapping[str, int] | None, total: int | None
) -> dict[str, int]:
    """Sales as stored: category -> minor units, or ``{"total": n}`` without categories.

    Args:
        settings: the tenant's settings.
        sales: by category (a category left out sold nothing).
        total: one amount; only for tenants without categories.

    Raises:
        BadRequest: ``shifts.bad_sales``: neither or both given, an unknown
            category, a negative amount or one over 10^12.
    """
    if (sales is None) == (total is None):
        raise BadRequest("shifts.bad_sales", "give the sales either as sales_total or as sales")
    if total is not None:
        if settings.categories:
            raise BadRequest(
                "shifts.bad_sales",
                "this tenant takes sales by category: "
                + ", ".join(c.id for c in settings.categories),
            )
        values = {"total": total}
    else:
        values = dict(sales or {})
        known = {c.id for c in settings.categories} or {"total"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BadRequest(
                "shifts.bad_sales",
                f"unknown sales categories {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            )
        values = {key: values.get(key, 0) for key in sorted(known)}
    for amount in values.values():
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= _MAX_SALES:
            raise BadRequest("shifts.bad_sales", "sales are whole minor units from 0 to 10^12")
    return values


async def _locked(conn: repo.Conn, shift_id: int, acting: Acting) -> asyncpg.Record:
    row = await repo.get_shift(conn, shift_id, lock=True)
    if row is None or (not acting.manages and row["employee_id"] != acting.employee_id):
        raise NotFound("shifts.not_found", f"no shift {shift_id}")
    return row


async def _pay(
    tenant: Tenant,
    conn: repo.Conn,
    employee_id: int,
    *,
    sales: dict[str, int],
    opened_at: datetime,
    closed_at: datetime,
) -> tuple[ShiftPay, date, int]:
    """``(pay, local date, worked seconds)`` of a shift of ``employee_id``.

    Raises:
        BadRequest: ``shifts.bad_times`` (clock-out before clock-in),
            ``shifts.too_long`` (over ``max_shift_hours``).
    """
    settings = settings_of(tenant)
    worked = int((closed_at - opened_at).total_seconds())
    if worked < 0:
        raise BadRequest("shifts.bad_times", "clock-out is before clock-in")
    if worked > settings.max_shift_hours * 3600:
        raise BadRequest(
            "shifts.too_long",
            f"a shift is at most {settings.max_shift_hours} hours",
            max_hours=settings.max_shift_hours,
        )
    employee = await repo.get_employee(conn, employee_id)
    assert employee is not None  # shifts reference employees
    local_date = tenant.local_time(opened_at).date()
    rank = settings.rank(await repo.rank_of(conn, employee_id, month_of(local_date)))
    hourly = employee["hourly_rate"]
    if hourly is None:
        hourly = settings.hourly_rates.get(employee["role"], 0)
    pay = shift_pay(
        settings,
        sales=sales,
        worked_seconds=worked,
        local_date=local_date,
        hourly_rate=hourly,
        rank=rank,
    )
    return pay, local_date, worked


def _aware(moment: datetime | None, default: datetime) -> datetime:
    if moment is None:
        return default
    if moment.tzinfo is None:
        raise BadRequest("shifts.naive_time", "times need a UTC offset (ISO 8601 with Z or +hh:mm)")
    return moment.astimezone(UTC)


async def open_shift(
    tenant: Tenant,
    acting: Acting,
    employee_id: int,
    *,
    at: datetime | None = None,
    within: Change | None = None,
) -> dict[str, Any]:
    """Clock in: open a shift for ``employee_id`` at ``at`` (default now).

    Args:
        within: make it part of a larger change (:func:`record_shift`).

    Raises:
        Forbidden: ``shifts.not_yours`` (staff open only their own shifts).
        NotFound: ``shifts.employee_not_found`` (or inactive).
        Conflict: ``shifts.already_open`` with ``shift_id`` (the open one;
            None when two clock-ins raced and the other just won).
    """
    if not acting.manages and acting.employee_id != employee_id:
        raise Forbidden("shifts.not_yours", "staff open only their own shifts")
    opened_at = _aware(at, datetime.now(UTC))
    settings = settings_of(tenant)
    initial = tenant.statuses["shift"].initial
    already = "this employee has an open shift; close it first"
    try:
        async with change(tenant, within) as unit:
            employee = await repo.get_employee(unit.conn, employee_id)
            if employee is None or not employee["active"]:
                raise NotFound("shifts.employee_not_found", f"no active employee {employee_id}")
            current = await repo.open_shift_of(unit.conn, employee_id)
            if current is not None:
                raise Conflict("shifts.already_open", already, shift_id=current["id"])
            # The partial unique index decides a race between two clock-ins.
            shift_id = await repo.open_shift(
                unit.conn,
                employee_id,
                initial,
                opened_at,
                tenant.local_time(opened_at).date(),
                settings.currency,
            )
            await repo.add_history(unit.conn, shift_id, None, initial, acting.user_id, acting.role)
            await unit.publish(
                "shifts.opened",
                {"shift_id": shift_id, "employee_id": employee_id, "at": opened_at.isoformat()},
            )
            row = await repo.get_shift(unit.conn, shift_id)
            [view] = await views(unit.conn, [row])
    except asyncpg.UniqueViolationError:
        raise Conflict("shifts.already_open", already, shift_id=None) from None
    return view


async def record_shift(
    tenant: Tenant,
    acting: Acting,
    employee_id: int,
    *,
    opened_at: datetime | None,
    closed_at: datetime | None,
    sales: Mapping[str, int] | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """Open and close a shift in one transaction (a whole shift recorded afterwards).

    Raises:
        the errors of :func:`open_shift` and :func:`close_shift`; nothing is
        written when either refuses.
    """
    async with change(tenant) as unit:
        opened = await open_shift(tenant, acting, employee_id, at=opened_at, within=unit)
        return await close_shift(
            tenant, acting, opened["id"], sales=sales, total=total, at=closed_at, within=unit
        )


async def close_shift(
    tenant: Tenant,
    acting: Acting,
    shift_id: int,
    *,
    sales: Mapping[str, int] | None = None,
    total: int | None = None,
    at: datetime | None = None,
    within: Change | None = None,
) -> dict[str, Any]:
    """Clock out with the shift's sales; computes and stores its pay.

    The shift moves to ``closed_status`` through the machine.

    Raises:
        NotFound: ``shifts.not_found`` (also another employee's, for staff).
        Conflict: ``shifts.not_open``.
        BadRequest: ``shifts.bad_sales``, ``shifts.bad_times``, ``shifts.too_long``.
        TransitionError: the machine refuses the move for this role.
    """
    settings = settings_of(tenant)
    values = normalize_sales(settings, sales, total)
    async with change(tenant, within) as unit:
        row = await _locked(unit.conn, shift_id, acting)
        if row["closed_at"] is not None:
            raise Conflict("shifts.not_open", f"shift {shift_id} is closed already")
        closed_at = _aware(at, datetime.now(UTC))
        target = settings.closed_status
        tenant.statuses["shift"].check(row["status"], target, acting.role)
        pay, local_date, worked = await _pay(
            tenant,
            unit.conn,
            row["employee_id"],
            sales=values,
            opened_at=row["opened_at"],
            closed_at=closed_at,
        )
        await repo.write_pay(
            unit.conn,
            shift_id,
            status=target,
            opened_at=row["opened_at"],
            closed_at=closed_at,
            local_date=local_date,
            worked_seconds=worked,
            sales=values,
            pay=pay,
        )
        await repo.add_history(
            unit.conn, shift_id, row["status"], target, acting.user_id, acting.role
        )
        await unit.publish(
            "shifts.closed",
            {
                "shift_id": shift_id,
                "employee_id": row["employee_id"],
                "status": target,
                "sales_total": pay.sales_total,
                "total": pay.total,
            },
        )
        [view] = await views(unit.conn, [await repo.get_shift(unit.conn, shift_id)])
    return view


async def change_status(
    tenant: Tenant,
    acting: Acting,
    shift_id: int,
    target: str,
    *,
    reason: str = "",
    expected: str | None = None,
) -> dict[str, Any]:
    """Move a closed shift to ``target`` (approve, reject, pay...) through the tenant's machine.

    Raises:
        NotFound: ``shifts.not_found``.
        BadRequest: ``shifts.close_with_sales`` (an open shift closes with
            its sales), ``shifts.bad_reason``.
        TransitionError: the machine refuses, or the shift is no longer in
            ``expected`` (HTTP 409 ``status.not_allowed``).
    """
    reason = _reason(reason, required=False)
    machine = tenant.statuses["shift"]
    async with change(tenant) as unit:
        row = await _locked(unit.conn, shift_id, acting)
        current = row["status"]
        if expected is not None and current != expected:
            raise TransitionError(
                current,
                target,
                machine.allowed(current, acting.role),
                f"shift {shift_id} is {current!r} now, not {expected!r}",
            )
        if row["closed_at"] is None:
            raise BadRequest("shifts.close_with_sales", "an open shift is closed with its sales")
        machine.check(current, target, acting.role)
        await repo.set_status(unit.conn, shift_id, target)
        await repo.add_history(
            unit.conn, shift_id, current, target, acting.user_id, acting.role, reason
        )
        await unit.publish(
            "shifts.status_changed",
            {
                "shift_id": shift_id,
                "employee_id": row["employee_id"],
                "from": current,
                "to": target,
                "reason": reason,
            },
        )
        [view] = await views(unit.conn, [await repo.get_shift(unit.conn, shift_id)])
    return view


def _reason(reason: str, *, required: bool) -> str:
    reason = reason.strip()
    if (required and not reason) or len(reason) > MAX_REASON or "\x00" in reason:
        raise BadRequest(
            "shifts.bad_reason",
            f"a reason is {'1' if required else '0'}-{MAX_REASON} characters without NUL",
        )
    return reason


async def correct_shift(
    tenant: Tenant,
    acting: Acting,
    shift_id: int,
    *,
    reason: str,
    sales: Mapping[str, int] | None = None,
    total: int | None = None,
    opened_at: datetime | None = None,
    closed_at: datetime | None = None,
) -> dict[str, Any]:
    """A manager's correction of a closed shift's times or sales; recomputes its pay.

    History gets ``changes`` (field -> ``{"from", "to"}``, the pay fields that
    moved included), the actor and the reason; the status stays.

    Raises:
        Forbidden: ``shifts.managers_only``.
        NotFound: ``shifts.not_found``.
        BadRequest: ``shifts.bad_reason``, ``shifts.nothing_to_correct``,
            ``shifts.bad_sales``, ``shifts.bad_times``, ``shifts.too_long``.
        Conflict: ``shifts.not_correctable`` (open, or a state outside
            ``correctable_statuses``), with ``status``.
    """
    if not acting.manages:
        raise Forbidden("shifts.managers_only", "only managers and admins correct shifts")
    reason = _reason(reason, required=True)
    settings = settings_of(tenant)
    if sales is None and total is None and opened_at is None and closed_at is None:
        raise BadRequest("shifts.nothing_to_correct", "give new sales, opened_at or closed_at")
    async with change(tenant) as unit:
        row = await _locked(unit.conn, shift_id, acting)
        if row["closed_at"] is None or row["status"] not in settings.correctable_statuses:
            raise Conflict(
                "shifts.not_correctable",
                f"shift {shift_id} is {row['status']!r}; corrections apply to "
                + ", ".join(settings.correctable_statuses),
                status=row["status"],
            )
        before = shift_view(row, [])
        values = (
            normalize_sales(settings, sales, total)
            if sales is not None or total is not None
            else before["sales"]
        )
        new_open = _aware(opened_at, row["opened_at"])
        new_close = _aware(closed_at, row["closed_at"])
        pay, local_date, worked = await _pay(
            tenant,
            unit.conn,
            row["employee_id"],
            sales=values,
            opened_at=new_open,
            closed_at=new_close,
        )
        await repo.write_pay(
            unit.conn,
            shift_id,
            status=row["status"],
            opened_at=new_open,
            closed_at=new_close,
            local_date=local_date,
            worked_seconds=worked,
            sales=values,
            pay=pay,
        )
        after_row = await repo.get_shift(unit.conn, shift_id)
        after = shift_view(after_row, [])
        fields = ("opened_at", "closed_at", "sales", "sales_total", "base_pay", "commission")
        fields += ("bonus_total", "total")
        changes = {f: {"from": before[f], "to": after[f]} for f in fields if before[f] != after[f]}
        await repo.add_history(
            unit.conn,
            shift_id,
            row["status"],
            row["status"],
            acting.user_id,
            acting.role,
            reason,
            changes,
        )
        await unit.publish(
            "shifts.corrected",
            {
                "shift_id": shift_id,
                "employee_id": row["employee_id"],
                "fields": sorted(changes),
                "total": pay.total,
            },
        )
        [view] = await views(unit.conn, [after_row])
    return view
