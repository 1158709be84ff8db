"""Reading shifts: JSON-ready views, one shift, searches, history; the month helpers.

Staff see only their own shifts (a shift of someone else is 404
``shifts.not_found``, as if it did not exist); managers, admins and the
system see every shift.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from core.errors import BadRequest, NotFound
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting

if TYPE_CHECKING:
    from core import Tenant

__all__ = [
    "commission_breakdown",
    "list_shifts",
    "load_shift",
    "month_of",
    "next_month",
    "shift_history",
    "shift_view",
    "views",
]


def month_of(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def next_month(month: date) -> date:
    """The first day of the month after ``month``."""
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def shift_view(row: asyncpg.Record, bonuses: list[asyncpg.Record]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "employee_id": row["employee_id"],
        "employee_name": row["employee_name"],
        "status": row["status"],
        "opened_at": row["opened_at"].isoformat(),
        "closed_at": row["closed_at"].isoformat() if row["closed_at"] else None,
        "local_date": row["local_date"].isoformat(),
        "worked_seconds": row["worked_seconds"],
        "sales": repo.from_json(row["sales"]) or {},
        "sales_total": row["sales_total"],
        "commission_base": row["commission_base"],
        "rate_percent": row["rate_bp"] / 100,
        "rank": row["rank"],
        "base_pay": row["base_pay"],
        "commission": row["commission"],
        "bonuses": [
            {"bonus": b["bonus"], "name": b["name"], "amount": b["amount"]} for b in bonuses
        ],
        "bonus_total": row["bonus_total"],
        "total": row["total"],
        "currency": row["currency"],
        "updated_at": row["updated_at"].isoformat(),
    }


async def views(conn: repo.Conn, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """JSON-ready shifts with their bonus lines (one query for all bonuses)."""
    lines: dict[int, list[asyncpg.Record]] = {}
    for bonus in await repo.bonuses_of(conn, [r["id"] for r in rows]):
        lines.setdefault(bonus["shift_id"], []).append(bonus)
    return [shift_view(row, lines.get(row["id"], [])) for row in rows]


async def load_shift(tenant: Tenant, acting: Acting, shift_id: int) -> dict[str, Any]:
    """One shift with its bonuses (staff: only their own).

    Raises:
        NotFound: ``shifts.not_found``.
    """
    async with tenant.db.acquire() as conn:
        row = await repo.get_shift(conn, shift_id)
        if row is None or (not acting.manages and row["employee_id"] != acting.employee_id):
            raise NotFound("shifts.not_found", f"no shift {shift_id}")
        [view] = await views(conn, [row])
    return view


async def list_shifts(
    tenant: Tenant,
    acting: Acting,
    *,
    employee_id: int | None = None,
    start: date | None = None,
    end: date | None = None,
    statuses: list[str] | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Shifts newest first; staff see only their own whatever ``employee_id`` says.

    Staff who are no employee (an API key with ``role: staff``) see none.

    Raises:
        BadRequest: ``shifts.unknown_status`` with ``known``.
    """
    known = tenant.statuses["shift"].states
    for status in statuses or ():
        if status not in known:
            raise BadRequest(
                "shifts.unknown_status",
                f"unknown status {status!r}; known: {', '.join(known)}",
                known=known,
            )
    if not acting.manages:
        if acting.employee_id is None:
            return []  # staff who are nobody's employee (a staff API key) have no shifts
        employee_id = acting.employee_id
    async with tenant.db.acquire() as conn:
        rows = await repo.search_shifts(
            conn,
            employee_id=employee_id,
            start=start,
            end=end,
            statuses=statuses,
            limit=limit,
            before=before,
        )
        return await views(conn, rows)


async def shift_history(tenant: Tenant, acting: Acting, shift_id: int) -> list[dict[str, Any]]:
    """The shift's history, oldest first (status changes and corrections).

    Raises:
        NotFound: ``shifts.not_found``.
    """
    await load_shift(tenant, acting, shift_id)
    async with tenant.db.acquire() as conn:
        rows = await repo.history_of(conn, shift_id)
    return [
        {
            "from_status": r["from_status"],
            "to_status": r["to_status"],
            "actor_id": r["actor_id"],
            "role": r["role"],
            "reason": r["reason"],
            "changes": repo.from_json(r["changes"]) or {},
            "at": r["at"].isoformat(),
        }
        for r in rows
    ]


async def commission_breakdown(tenant: Tenant, acting: Acting, shift_id: int) -> dict[str, Any]:
    """The shift's pay with its commission split over the rate table (staff: only their own).

    The parts are computed by today's rules from the stored commission base
    and the rank the shift was paid with (the rank's own ``rates`` when it
    has them); ``matches`` says whether they give the stored commission (not
    when the rates changed since, or an import kept a recorded commission).

    Returns:
        The shift's view plus ``mode``, ``rates_of`` (``commission`` or
        ``rank:<id>``), ``parts`` (:class:`CommissionPart` as dicts: ``from``,
        ``to``, ``percent``, ``base``, ``exact``) and ``matches``.

    Raises:
        NotFound: ``shifts.not_found``.
    """
    from plugins.shifts.service.commission import commission, commission_parts

    shift = await load_shift(tenant, acting, shift_id)
    settings = tenant.settings_for("shifts")
    rank = settings.rank(shift["rank"])
    own_rates = rank is not None and rank.rates is not None
    rates = rank.rates if own_rates else settings.commission.rates
    mode = settings.commission.mode
    base = shift["commission_base"]
    parts = commission_parts(base, rates, mode)
    return {
        **shift,
        "mode": mode,
        "rates_of": f"rank:{rank.id}" if own_rates else "commission",
        "parts": [msgspec.to_builtins(part) for part in parts],
        "matches": commission(base, rates, mode) == shift["commission"],
    }
