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

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core.errors import Forbidden
from core.http.auth import ActorDep, TenantDep, require_api_key_or_webapp
from core.http.ratelimit import limit_writes
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting, acting_of
from plugins.shifts.dto import (
    CloseIn,
    CommissionView,
    CorrectionIn,
    EmployeeIn,
    EmployeePatch,
    EmployeeView,
    HistoryView,
    InviteView,
    ReportView,
    ShiftIn,
    ShiftView,
    StatusChangeIn,
)
from plugins.shifts.service import employees, reports, shifts

__all__ = ["EmployeesController", "ReportsController", "ShiftsController"]


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
    ) -> CommissionView:
        """The shift's pay and its commission split over the rate table (``parts``)."""
        breakdown = await shifts.commission_breakdown(
            tenant, await _acting(tenant, actor), shift_id
        )
        return _view(CommissionView, breakdown)

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
