"""Month reports per employee and for the team, exported as CSV and as an XLSX workbook.

A month is a calendar month in the tenant's time zone (``pay_period:
monthly``); a shift belongs to the local date it was opened on. Only shifts
in ``counted_statuses`` count, each once (one aggregate query over the
month, :data:`plugins.shifts.repository.MONTH_REPORT`), so a report equals
the sum of its approved shifts. Amounts are minor units; the XLSX holds them
as numbers of the major unit (``12345`` kopecks -> ``123.45``) with the
currency's number of decimals (CLDR via Babel), as the spreadsheets it
replaces did.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from core.errors import BadRequest
from core.kit import minor_unit_digits
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting
from plugins.shifts.service.employees import settings_of
from plugins.shifts.service.shifts import month_of, next_month

if TYPE_CHECKING:
    from core import Tenant

__all__ = [
    "REPORT_COLUMNS",
    "current_month",
    "month_progress",
    "month_report",
    "parse_month",
    "report_csv",
    "report_xlsx",
]

REPORT_COLUMNS = (
    "employee_id",
    "employee_name",
    "shifts",
    "worked_seconds",
    "sales",
    "base_pay",
    "commission",
    "bonuses",
    "total",
)
"""Columns of a report row, in export order (amounts in minor units)."""

_AMOUNTS = ("sales", "base_pay", "commission", "bonuses", "total")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> date:
    """``YYYY-MM`` as the first day of that month.

    Raises:
        BadRequest: ``shifts.bad_month``.
    """
    match = _MONTH.match(text)
    if not match or not 1 <= int(match.group(1)) <= 9998:
        raise BadRequest("shifts.bad_month", f"a month is written YYYY-MM, not {text[:20]!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def current_month(tenant: Tenant) -> date:
    """The first day of the tenant-local month now."""
    return month_of(tenant.local_time(datetime.now(UTC)).date())


async def month_report(
    tenant: Tenant, acting: Acting, month: date, employee_id: int | None = None
) -> dict[str, Any]:
    """Per-employee totals of the month's counted shifts, and the team's.

    Staff get their own row only, whatever ``employee_id`` says; staff who
    are no employee (an API key with ``role: staff``) get no rows.

    Returns:
        ``{"month": "YYYY-MM", "currency", "counted_statuses", "employees":
        [row...], "totals": {...}}``; a row has :data:`REPORT_COLUMNS`.
    """
    settings = settings_of(tenant)
    rows: list[Any] = []
    if acting.manages or acting.employee_id is not None:
        if not acting.manages:
            employee_id = acting.employee_id
        async with tenant.db.acquire() as conn:
            rows = await repo.month_report(
                conn, month, next_month(month), settings.counted_statuses, employee_id
            )
    employees = [{column: row[column] for column in REPORT_COLUMNS} for row in rows]
    totals = {
        column: sum(e[column] for e in employees)
        for column in ("shifts", "worked_seconds", *_AMOUNTS)
    }
    return {
        "month": f"{month:%Y-%m}",
        "currency": settings.currency,
        "counted_statuses": list(settings.counted_statuses),
        "employees": employees,
        "totals": totals,
    }


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV (RFC 4180, comma, header row; amounts in minor units; a totals row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*REPORT_COLUMNS, "currency"])
    for row in report["employees"]:
        writer.writerow([*(row[c] for c in REPORT_COLUMNS), report["currency"]])
    totals = report["totals"]
    writer.writerow(["", "total", *(totals[c] for c in REPORT_COLUMNS[2:]), report["currency"]])
    return out.getvalue()


def report_xlsx(report: dict[str, Any], title: str = "Report") -> bytes:
    """The report as an XLSX workbook (openpyxl): one sheet, a header, a row per employee, totals.

    Amounts are numbers of the major unit with the currency's decimals
    (format ``#,##0.00`` for RUB); hours are numbers with two decimals.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    digits = minor_unit_digits(report["currency"])
    scale = 10**digits
    money_format = "#,##0" + ("." + "0" * digits if digits else "")
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = f"{title} {report['month']}"[:31]  # Excel: sheet names up to 31 characters
    header = ["Employee id", "Employee", "Shifts", "Hours", "Sales", "Base pay"]
    header += ["Commission", "Bonuses", "Total", "Currency"]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)

    def line(values: dict[str, Any], employee_id: Any, name: str) -> list[Any]:
        return [
            employee_id,
            name,
            values["shifts"],
            round(values["worked_seconds"] / 3600, 2),
            *(values[c] / scale for c in _AMOUNTS),
            report["currency"],
        ]

    for row in report["employees"]:
        sheet.append(line(row, row["employee_id"], row["employee_name"]))
    sheet.append(line(report["totals"], None, "Total"))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for row in sheet.iter_rows(min_row=2, min_col=5, max_col=9):
        for cell in row:
            cell.number_format = money_format
    for row in sheet.iter_rows(min_row=2, min_col=4, max_col=4):
        for cell in row:
            cell.number_format = "0.00"
    sheet.column_dimensions["B"].width = 28
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def month_progress(tenant: Tenant, employee_id: int, month: date) -> dict[str, Any]:
    """An employee's month so far, for ``/mymonth``.

    Returns:
        ``shifts``/``worked_seconds``/``sales``/``commission``/``bonuses``/``total``
        over every closed or open shift of the month (what the employee
        earned so far, approved or not), ``counted_sales``/``counted_shifts``
        (what ranks are computed from), ``rank`` held this month, ``next_rank``
        for next month and ``to_next`` (sales or shifts still needed; None at the top).
    """
    settings = settings_of(tenant)
    async with tenant.db.acquire() as conn:
        progress = await repo.month_progress(
            conn, employee_id, month, next_month(month), settings.counted_statuses
        )
        rank_id = await repo.rank_of(conn, employee_id, month)
    achieved = progress["sales"] if settings.rank_basis == "sales" else progress["shifts"]
    upcoming = settings.next_rank(achieved)
    return {
        "month": f"{month:%Y-%m}",
        "shifts": progress["all_shifts"],
        "worked_seconds": progress["all_seconds"],
        "sales": progress["all_sales"],
        "commission": progress["all_commission"],
        "bonuses": progress["all_bonuses"],
        "total": progress["all_total"],
        "counted_sales": progress["sales"],
        "counted_shifts": progress["shifts"],
        "rank": settings.rank(rank_id),
        "next_rank": upcoming,
        "to_next": upcoming.threshold - achieved if upcoming is not None else None,
    }
