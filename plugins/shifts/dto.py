"""Bodies and answers of the shifts HTTP API (msgspec Structs; Litestar decodes and documents them).

Amounts are minor units of ``features.shifts.currency``; times ISO 8601 with
an offset.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "BonusView",
    "CloseIn",
    "CommissionPartView",
    "CommissionView",
    "CorrectionIn",
    "EmployeeIn",
    "EmployeePatch",
    "EmployeeView",
    "HistoryView",
    "InviteView",
    "ReportRow",
    "ReportView",
    "ShiftIn",
    "ShiftView",
    "StatusChangeIn",
]

_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
_MONEY = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
_USER = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
_REASON = Annotated[str, msgspec.Meta(max_length=500)]
_SALES = dict[Annotated[str, msgspec.Meta(max_length=32)], _MONEY]


class EmployeeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new employee: ``user_id`` (Telegram) now, or later through an invite link.

    ``hourly_rate``: personal base pay in minor units per hour (None: the role's).
    """

    name: _NAME
    role: str = "staff"
    user_id: _USER | None = None
    hourly_rate: _MONEY | None = None


class EmployeePatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to an employee; omitted fields stay (``hourly_rate: null`` is not a change)."""

    name: _NAME | None = None
    role: str | None = None
    user_id: _USER | None = None
    hourly_rate: _MONEY | None = None
    active: bool | None = None


class EmployeeView(msgspec.Struct):
    """An employee; ``hourly_rate`` minor units per hour or None; ``external_id`` from an import."""

    id: int
    user_id: int | None
    name: str
    role: str
    hourly_rate: int | None
    active: bool
    external_id: str | None
    created_at: datetime


class InviteView(msgspec.Struct):
    """A one-time invite: ``link`` (``t.me``, None if getMe failed) and its ``start`` parameter."""

    employee_id: int
    start: str
    link: str | None
    expires_at: datetime


class ShiftIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Open a shift (``opened_at`` default now), or record a whole one with ``closed_at`` and sales.

    Sales: ``sales_total`` for tenants without categories, else ``sales``
    (category id -> minor units).
    """

    employee_id: int
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    sales_total: _MONEY | None = None
    sales: _SALES | None = None


class CloseIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Close a shift: the sales (``sales_total`` or ``sales`` by category) and ``closed_at`` (default now)."""

    sales_total: _MONEY | None = None
    sales: _SALES | None = None
    closed_at: datetime | None = None


class StatusChangeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A status change; ``expected_status``: refuse (409) unless the shift is still in it."""

    status: str
    reason: _REASON = ""
    expected_status: str | None = None


class CorrectionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A correction: new sales and/or times, and the reason (kept in the history)."""

    reason: _REASON
    sales_total: _MONEY | None = None
    sales: _SALES | None = None
    opened_at: datetime | None = None
    closed_at: datetime | None = None


class BonusView(msgspec.Struct):
    """A bonus applied to a shift (``rank:<id>`` for a rank's bonus percent); ``amount`` minor units."""

    bonus: str
    name: str
    amount: int


class ShiftView(msgspec.Struct):
    """A shift and its pay (minor units of ``currency``).

    ``total = base_pay + commission + bonus_total``; ``rate_percent`` is the
    rate of the interval the commission base falls in; ``local_date`` the
    tenant-local date it belongs to.
    """

    id: int
    employee_id: int
    employee_name: str
    status: str
    opened_at: datetime
    closed_at: datetime | None
    local_date: date
    worked_seconds: int
    sales: dict[str, int]
    sales_total: int
    commission_base: int
    rate_percent: float
    rank: str | None
    base_pay: int
    commission: int
    bonuses: list[BonusView]
    bonus_total: int
    total: int
    currency: str
    updated_at: datetime


class HistoryView(msgspec.Struct):
    """One history entry: a status change, or a correction (``changes``: field -> from/to)."""

    from_status: str | None
    to_status: str
    actor_id: int | None
    role: str
    reason: str
    changes: dict[str, Any]
    at: datetime


class ReportRow(msgspec.Struct, omit_defaults=True):
    """One employee's month (or the team's totals, without id and name); amounts minor units."""

    shifts: int
    worked_seconds: int
    sales: int
    base_pay: int
    commission: int
    bonuses: int
    total: int
    employee_id: int | None = None
    employee_name: str | None = None


class ReportView(msgspec.Struct):
    """A month report over ``counted_statuses``."""

    month: str
    currency: str
    counted_statuses: list[str]
    employees: list[ReportRow]
    totals: ReportRow


class CommissionPartView(msgspec.Struct):
    """The part of the commission base one interval pays for.

    ``base`` minor units at ``percent``; ``exact`` is ``base × percent``
    before rounding (minor units, up to four decimals, a decimal string).
    """

    from_: int = msgspec.field(name="from")
    to: int | None = None
    percent: float = 0.0
    base: int = 0
    exact: str = "0"


class CommissionView(ShiftView):
    """A shift's pay with its commission split over the rate table.

    ``commission`` is the sum of the parts' ``exact`` amounts rounded half up
    once. ``rates_of`` is ``commission`` (``features.shifts.commission.rates``)
    or ``rank:<id>`` (the rank's own table). The parts follow today's rules;
    ``matches`` is False when they do not give the stored commission (the
    rates changed since, or an import kept the commission it recorded).
    """

    mode: str
    rates_of: str
    parts: list[CommissionPartView]
    matches: bool
