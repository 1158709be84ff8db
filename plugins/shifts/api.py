"""HTTP API of the shifts plugin, mounted by the core at ``/api/tenants/{tenant_id}/shifts``.

* ``X-API-Key``: a plain key is ``admin`` (everything); a key with
  ``role: manager`` manages; ``role: staff`` keys see nothing of their own
  (they are nobody's employee).
* ``X-Telegram-Init-Data``: the WebApp user acts as the employee they are
  (``staff``: their own shifts and month only; ``manager``: everything).

Bodies are ``data: <Struct>`` parameters; answers are the Structs below.
Amounts are minor units of ``features.shifts.currency``; times ISO 8601 with
an offset (stored in UTC). Refusals are problem bodies with codes
``shifts.<what>`` (``core.errors``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core.errors import Forbidden
from core.http.auth import ActorDep, TenantDep, require_api_key_or_webapp
from core.http.ratelimit import limit_writes
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting, acting_of
from plugins.shifts.service import employees, reports, shifts

__all__ = [
    "BonusView",
    "CloseIn",
    "CorrectionIn",
    "EmployeeIn",
    "EmployeePatch",
    "EmployeeView",
    "EmployeesController",
    "HistoryView",
    "InviteView",
    "ReportRow",
    "ReportView",
    "ReportsController",
    "ShiftIn",
    "ShiftView",
    "ShiftsController",
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


class ReportRow(msgspec.Struct):
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


def _view(kind: type[Any], value: Any) -> Any:
    return msgspec.convert(value, kind, strict=False)


async def _acting(tenant: Any, actor: Any) -> Acting:
    acting = await acting_of(tenant, actor)
    if acting is None:
        raise Forbidden("shifts.staff_only", "this API is for the tenant's employees and managers")
    return acting


class EmployeesController(Controller):
    """Employees: managers add, change and invite them."""

    path = "/employees"
    guards = [require_api_key_or_webapp]

    @get("/", summary="Employees")
    async def list_employees(
        self, tenant: TenantDep, actor: ActorDep, active: FromQuery[bool | None] = None
    ) -> list[EmployeeView]:
        """Every employee (``?active=true``: active only); managers only (403 ``shifts.managers_only``)."""
        acting = await _acting(tenant, actor)
        if not acting.manages:
            raise Forbidden("shifts.managers_only", "only managers list employees")
        async with tenant.db.acquire() as conn:
            rows = await repo.list_employees(conn, active_only=bool(active))
        return [_view(EmployeeView, employees.employee_view(r)) for r in rows]

    @post("/", guards=[limit_writes], summary="Add an employee")
    async def create_employee(
        self, tenant: TenantDep, actor: ActorDep, data: JSONBody[EmployeeIn]
    ) -> EmployeeView:
        """201 with the employee; 400 ``shifts.bad_role``/``bad_name``; 409 ``shifts.user_taken``."""
        employee = await employees.create_employee(
            tenant,
            await _acting(tenant, actor),
            name=data.name,
            role=data.role,
            user_id=data.user_id,
            hourly_rate=data.hourly_rate,
        )
        return _view(EmployeeView, employee)

    @patch("/{employee_id:int}", guards=[limit_writes], summary="Change an employee")
    async def update_employee(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        employee_id: FromPath[int],
        data: JSONBody[EmployeePatch],
    ) -> EmployeeView:
        """200 with the employee; 404 ``shifts.employee_not_found``."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        employee = await employees.update_employee(
            tenant, await _acting(tenant, actor), employee_id, changes
        )
        return _view(EmployeeView, employee)

    @post(
        "/{employee_id:int}/invite",
        guards=[limit_writes],
        status_code=201,
        summary="A one-time invite link",
    )
    async def invite(
        self, tenant: TenantDep, actor: ActorDep, employee_id: FromPath[int]
    ) -> InviteView:
        """201 with the link; 409 ``shifts.already_joined``."""
        return _view(
            InviteView,
            await employees.create_invite(tenant, await _acting(tenant, actor), employee_id),
        )


class ShiftsController(Controller):
    """Shifts: open, close, list, read, change status, correct, history, commission."""

    path = "/shifts"
    guards = [require_api_key_or_webapp]

    @post("/", guards=[limit_writes], summary="Open a shift (or record a closed one)")
    async def create(
        self, tenant: TenantDep, actor: ActorDep, data: JSONBody[ShiftIn]
    ) -> ShiftView:
        """201 with the shift; 409 ``shifts.already_open``; 403 ``shifts.not_yours``.

        With ``closed_at`` or sales the shift is opened and closed in one
        transaction: a refusal of either leaves nothing.
        """
        acting = await _acting(tenant, actor)
        if data.closed_at is None and data.sales is None and data.sales_total is None:
            shift = await shifts.open_shift(tenant, acting, data.employee_id, at=data.opened_at)
        else:
            shift = await shifts.record_shift(
                tenant,
                acting,
                data.employee_id,
                opened_at=data.opened_at,
                closed_at=data.closed_at,
                sales=data.sales,
                total=data.sales_total,
            )
        return _view(ShiftView, shift)

    @get("/", summary="Shifts by employee, period and status, newest first")
    async def search(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        employee: FromQuery[int | None] = None,
        date_from: Annotated[date | None, QueryParameter(name="from")] = None,
        date_to: Annotated[date | None, QueryParameter(name="to")] = None,
        status: FromQuery[list[str] | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        before: FromQuery[int | None] = None,
    ) -> list[ShiftView]:
        """``?from=&to=`` local dates (``to`` excluded); staff see only their own."""
        rows = await shifts.list_shifts(
            tenant,
            await _acting(tenant, actor),
            employee_id=employee,
            start=date_from,
            end=date_to,
            statuses=status,
            limit=limit,
            before=before,
        )
        return _view(list[ShiftView], rows)

    @get("/{shift_id:int}", summary="One shift")
    async def read(self, tenant: TenantDep, actor: ActorDep, shift_id: FromPath[int]) -> ShiftView:
        """404 ``shifts.not_found`` (also another employee's, for staff)."""
        return _view(
            ShiftView, await shifts.load_shift(tenant, await _acting(tenant, actor), shift_id)
        )

    @get("/{shift_id:int}/commission", summary="The pay breakdown of a shift")
    async def commission(
        self, tenant: TenantDep, actor: ActorDep, shift_id: FromPath[int]
    ) -> ShiftView:
        """The shift with its sales, base, rate, commission, base pay, bonuses and total."""
        return _view(
            ShiftView, await shifts.load_shift(tenant, await _acting(tenant, actor), shift_id)
        )

    @post("/{shift_id:int}/close", guards=[limit_writes], status_code=200, summary="Close a shift")
    async def close(
        self, tenant: TenantDep, actor: ActorDep, shift_id: FromPath[int], data: JSONBody[CloseIn]
    ) -> ShiftView:
        """200 with the pay; 409 ``shifts.not_open``; 400 ``shifts.bad_sales``/``too_long``."""
        shift = await shifts.close_shift(
            tenant,
            await _acting(tenant, actor),
            shift_id,
            sales=data.sales,
            total=data.sales_total,
            at=data.closed_at,
        )
        return _view(ShiftView, shift)

    @post("/{shift_id:int}/status", guards=[limit_writes], status_code=200, summary="Change status")
    async def set_status(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        shift_id: FromPath[int],
        data: JSONBody[StatusChangeIn],
    ) -> ShiftView:
        """200; 409 ``status.not_allowed`` with ``current`` and ``allowed``."""
        shift = await shifts.change_status(
            tenant,
            await _acting(tenant, actor),
            shift_id,
            data.status,
            reason=data.reason,
            expected=data.expected_status,
        )
        return _view(ShiftView, shift)

    @post(
        "/{shift_id:int}/correct", guards=[limit_writes], status_code=200, summary="Correct a shift"
    )
    async def correct(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        shift_id: FromPath[int],
        data: JSONBody[CorrectionIn],
    ) -> ShiftView:
        """200 with the recomputed shift; 403 ``shifts.managers_only``; 409 ``shifts.not_correctable``."""
        shift = await shifts.correct_shift(
            tenant,
            await _acting(tenant, actor),
            shift_id,
            reason=data.reason,
            sales=data.sales,
            total=data.sales_total,
            opened_at=data.opened_at,
            closed_at=data.closed_at,
        )
        return _view(ShiftView, shift)

    @get("/{shift_id:int}/history", summary="History of a shift")
    async def history(
        self, tenant: TenantDep, actor: ActorDep, shift_id: FromPath[int]
    ) -> list[HistoryView]:
        """Status changes and corrections, oldest first."""
        rows = await shifts.shift_history(tenant, await _acting(tenant, actor), shift_id)
        return _view(list[HistoryView], rows)


class ReportsController(Controller):
    """Month reports: JSON, CSV and XLSX."""

    path = "/reports"
    guards = [require_api_key_or_webapp]

    async def _report(
        self, tenant: Any, actor: Any, month: str, employee: int | None
    ) -> dict[str, Any]:
        return await reports.month_report(
            tenant, await _acting(tenant, actor), reports.parse_month(month), employee
        )

    @get("/{month:str}", summary="The month report (team, or ?employee=)")
    async def month(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        month: FromPath[str],
        employee: FromQuery[int | None] = None,
    ) -> ReportView:
        """``month`` is ``YYYY-MM`` (400 ``shifts.bad_month``); staff get their own row only."""
        return _view(ReportView, await self._report(tenant, actor, month, employee))

    @get("/{month:str}/csv", summary="The month report as CSV", media_type="text/csv")
    async def month_csv(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        month: FromPath[str],
        employee: FromQuery[int | None] = None,
    ) -> Response[str]:
        """RFC 4180 CSV, header row, amounts in minor units, a totals row."""
        report = await self._report(tenant, actor, month, employee)
        return Response(
            reports.report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="shifts-{report["month"]}.csv"'},
        )

    @get(
        "/{month:str}/xlsx",
        summary="The month report as an XLSX workbook",
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    async def month_xlsx(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        month: FromPath[str],
        employee: FromQuery[int | None] = None,
    ) -> Response[bytes]:
        """One sheet: a row per employee and a totals row; amounts in major units (number cells)."""
        report = await self._report(tenant, actor, month, employee)
        return Response(
            reports.report_xlsx(report, title="Shifts"),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={
                "Content-Disposition": f'attachment; filename="shifts-{report["month"]}.xlsx"'
            },
        )
