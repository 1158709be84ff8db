"""``tenantry import <tenant> shifts <files...> [--dry-run]``: the old spreadsheets' CSV exports.

Each file is one sheet exported as CSV (UTF-8, comma, header row); its kind
is told by its header (columns in any order, extra columns ignored):

* employees: ``employee_id,name[,telegram_id,role,hourly_rate,active]``;
* shifts: ``shift_id,employee_id,date,clock_in,clock_out,status`` with the
  sales as ``sales`` or one ``sales_<category>`` column per category, and
  optionally the recorded ``commission`` and ``base_pay``;
* bonuses (the old ``active_bonuses``): ``shift_id,bonus,amount[,name]``;
* employee ranks: ``employee_id,month,rank``;
* rates (the old ``dynamic_rates``): ``from,to,percent``; ranks:
  ``rank,threshold[,name,bonus_percent]``. These are settings, kept in the
  tenant YAML: they are validated and compared with ``features.shifts``,
  and a difference is reported, not written.

Amounts are in major units as the sheets held them (``1500``, ``1 500,50``);
dates ``YYYY-MM-DD`` or ``DD.MM.YYYY``, times ``HH:MM`` in the tenant's zone
(a clock-out before the clock-in is the next day). Every row is validated
first; a bad row is reported with its file and line and then nothing at all
is written. Rows are found again by their old ids (``employees.external_id``,
``shifts.external_id``), so re-running the same files writes nothing new.
Every run is recorded in ``sync_log`` (files, counts per kind, bad rows,
whether it was a dry run) by :func:`record_import`, which the command calls
after the run's transaction was committed or rolled back: refused runs and
dry runs are in the log too. An imported shift keeps its recorded
commission, base pay and bonuses; one without a recorded commission gets the
current rules' commission.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from core.imports import ImportIssue, ImportReport
from plugins.shifts import repository as repo
from plugins.shifts.config import ShiftsSettings
from plugins.shifts.service._sheets import (
    KINDS,
    Bad,
    Row,
    compare_settings,
    details,
    read_settings,
    read_sheets,
    to_date,
    to_money,
    to_time,
)
from plugins.shifts.service.commission import BonusLine, shift_pay

__all__ = ["KINDS", "run_import"]


async def run_import(conn: repo.Conn, paths: Sequence[Path], config: Any) -> ImportReport:
    """Validate the files, then write what is new in the transaction of ``conn``.

    Args:
        conn: inside the command's transaction, search_path the tenant's schema.
        paths: the CSV files.
        config: the tenant's ``TenantConfig`` (its ``features.shifts``,
            ``statuses.shift`` and time zone).

    Returns:
        The report: rows read, new (written, or to be written in a dry run),
        already present, bad rows with file and line, counts per kind.
    """
    report = ImportReport()
    settings, machine = read_settings(config)
    tz = ZoneInfo(config.timezone)
    rows = read_sheets(paths, report)
    report.read = sum(len(r) for r in rows.values())
    counts = {
        kind: {"new": 0, "existing": 0}
        for kind in ("employees", "shifts", "bonuses", "employee_ranks")
    }

    def bad(row: Row, reason: str) -> None:
        report.issues.append(ImportIssue(row.line, reason, row.file))

    compare_settings(rows, settings, report, bad)

    # Employees
    known = {
        r["external_id"]: r["id"]
        for r in await conn.fetch(
            "SELECT external_id, id FROM employees WHERE external_id IS NOT NULL"
        )
    }
    users = {
        r["user_id"]: r["external_id"]
        for r in await conn.fetch(
            "SELECT user_id, external_id FROM employees WHERE user_id IS NOT NULL"
        )
    }
    new_employees: list[dict[str, Any]] = []
    in_files: set[str] = set()
    for row in rows["employees"]:
        v = row.values
        try:
            external = v["employee_id"]
            if not external:
                raise Bad("employee_id is empty")
            if external in in_files:
                raise Bad(f"employee_id {external!r} appears twice")
            in_files.add(external)
            name = " ".join(v["name"].split())
            if not 1 <= len(name) <= 100 or "\x00" in name:
                raise Bad("name: 1-100 characters")
            role = (v.get("role") or "staff").lower()
            if role not in ("staff", "manager"):
                raise Bad(f"role: {role!r} is not staff or manager")
            user_id = None
            if v.get("telegram_id"):
                if not v["telegram_id"].isdigit() or not 1 <= int(v["telegram_id"]) < 2**63:
                    raise Bad(f"telegram_id: {v['telegram_id']!r} is not a Telegram user id")
                user_id = int(v["telegram_id"])
                if users.get(user_id, external) != external:
                    raise Bad(f"telegram_id {user_id} belongs to another employee")
            rate = (
                to_money(v["hourly_rate"], settings.currency, "hourly_rate")
                if v.get("hourly_rate")
                else None
            )
            active = (v.get("active") or "yes").lower() not in ("no", "false", "0", "нет")
        except Bad as exc:
            bad(row, str(exc))
            continue
        if external in known:
            counts["employees"]["existing"] += 1
            continue
        counts["employees"]["new"] += 1
        new_employees.append(
            {
                "external": external,
                "name": name,
                "role": role,
                "user_id": user_id,
                "rate": rate,
                "active": active,
            }
        )
    employee_ids = set(known) | {e["external"] for e in new_employees}

    # Employee ranks
    new_ranks: list[tuple[str, date, str]] = []
    for row in rows["employee_ranks"]:
        v = row.values
        try:
            if v["employee_id"] not in employee_ids:
                raise Bad(
                    f"employee_id {v['employee_id']!r} is in no employees file nor the database"
                )
            month = to_date(
                v["month"] + "-01" if re.fullmatch(r"\d{4}-\d{2}", v["month"]) else v["month"],
                "month",
            ).replace(day=1)
            if settings.rank(v["rank"]) is None:
                raise Bad(f"rank {v['rank']!r} is not a rank of features.shifts.ranks")
        except Bad as exc:
            bad(row, str(exc))
            continue
        new_ranks.append((v["employee_id"], month, v["rank"]))

    # Bonuses, by old shift id
    bonuses: dict[str, list[BonusLine]] = {}
    bonus_rows: dict[str, Row] = {}
    for row in rows["bonuses"]:
        v = row.values
        try:
            amount = to_money(v["amount"], settings.currency, "amount")
            if not re.fullmatch(r"[a-z0-9][a-z0-9_:-]{0,63}", v["bonus"]):
                raise Bad(f"bonus: {v['bonus']!r} is not an id (a-z, 0-9, _ - :)")
        except Bad as exc:
            bad(row, str(exc))
            continue
        name = v.get("name") or (
            next((b.name for b in settings.bonuses if b.id == v["bonus"]), v["bonus"])
        )
        bonuses.setdefault(v["shift_id"], []).append(BonusLine(v["bonus"], name[:100], amount))
        bonus_rows.setdefault(v["shift_id"], row)

    # Shifts
    known_shifts = {
        r["external_id"]
        for r in await conn.fetch("SELECT external_id FROM shifts WHERE external_id IS NOT NULL")
    }
    categories = [c.id for c in settings.categories]
    new_shifts: list[dict[str, Any]] = []
    seen_shifts: set[str] = set()
    for row in rows["shifts"]:
        v = row.values
        try:
            external = v["shift_id"]
            if not external or external in seen_shifts:
                raise Bad(f"shift_id {external!r} is empty or appears twice")
            seen_shifts.add(external)
            if v["employee_id"] not in employee_ids:
                raise Bad(
                    f"employee_id {v['employee_id']!r} is in no employees file nor the database"
                )
            day = to_date(v["date"], "date")
            start = datetime.combine(day, to_time(v["clock_in"], "clock_in"), tz)
            end = datetime.combine(day, to_time(v["clock_out"], "clock_out"), tz)
            if end < start:
                end += timedelta(days=1)
            if end - start > timedelta(hours=settings.max_shift_hours):
                raise Bad(f"the shift is longer than {settings.max_shift_hours} hours")
            status = v["status"]
            if status not in machine.states or status == machine.initial:
                raise Bad(
                    f"status {status!r} is not a closed state of statuses.shift ({', '.join(machine.states)})"
                )
            if categories:
                missing = [c for c in categories if f"sales_{c}" not in v]
                if missing:
                    raise Bad(
                        "sales: columns "
                        + ", ".join(f"sales_{c}" for c in missing)
                        + " are missing"
                    )
                sales = {
                    c: to_money(v[f"sales_{c}"] or "0", settings.currency, f"sales_{c}")
                    for c in categories
                }
            else:
                if "sales" not in v:
                    raise Bad("sales: the column is missing")
                sales = {"total": to_money(v["sales"] or "0", settings.currency, "sales")}
            commission = (
                to_money(v["commission"], settings.currency, "commission")
                if v.get("commission")
                else None
            )
            base = (
                to_money(v["base_pay"], settings.currency, "base_pay")
                if v.get("base_pay")
                else None
            )
        except Bad as exc:
            bad(row, str(exc))
            continue
        if external in known_shifts:
            counts["shifts"]["existing"] += 1
            continue
        counts["shifts"]["new"] += 1
        new_shifts.append(
            {
                "external": external,
                "employee": v["employee_id"],
                "day": day,
                "start": start.astimezone(UTC),
                "end": end.astimezone(UTC),
                "status": status,
                "sales": sales,
                "commission": commission,
                "base": base,
            }
        )
    for shift_id, row in bonus_rows.items():
        if shift_id not in seen_shifts and shift_id not in known_shifts:
            bad(row, f"shift_id {shift_id!r} is in no shifts file nor the database")

    report.counts = counts
    if report.issues:
        # A refused run writes nothing; record_import logs it.
        report.details = details(counts, "nothing written: fix the rows above and run again")
        report.written, report.skipped = 0, 0
        return report

    # Write (the command's transaction: all or nothing)
    for employee in new_employees:
        row = await repo.insert_employee(
            conn,
            name=employee["name"],
            role=employee["role"],
            user_id=employee["user_id"],
            hourly_rate=employee["rate"],
            external_id=employee["external"],
        )
        if not employee["active"]:
            await repo.update_employee(conn, row["id"], {"active": False})
        known[employee["external"]] = row["id"]
    for external, month, rank in new_ranks:
        status = await conn.execute(
            "INSERT INTO employee_ranks (employee_id, month, rank) VALUES ($1, $2, $3)"
            " ON CONFLICT (employee_id, month) DO NOTHING",
            known[external],
            month,
            rank,
        )
        counts["employee_ranks"]["new" if status.endswith(" 1") else "existing"] += 1
    shift_ids = {
        r["external_id"]: r["id"]
        for r in await conn.fetch(
            "SELECT external_id, id FROM shifts WHERE external_id IS NOT NULL"
        )
    }
    for shift in new_shifts:
        shift_ids[shift["external"]] = await _write_shift(
            conn, settings, known, shift, bonuses.get(shift["external"], [])
        )
        counts["bonuses"]["new"] += len(bonuses.get(shift["external"], []))
    for external, lines in bonuses.items():
        if any(s["external"] == external for s in new_shifts):
            continue
        for line in lines:
            status = await conn.execute(
                "INSERT INTO shift_bonuses (shift_id, bonus, name, amount) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (shift_id, bonus) DO NOTHING",
                shift_ids[external],
                line.bonus,
                line.name,
                line.amount,
            )
            counts["bonuses"]["new" if status.endswith(" 1") else "existing"] += 1
    report.written = sum(c["new"] for c in counts.values())
    report.skipped = sum(c["existing"] for c in counts.values())
    report.details = [*report.details, *details(counts, None)]
    return report


async def _write_shift(
    conn: repo.Conn,
    settings: ShiftsSettings,
    employees: dict[str, int],
    shift: dict[str, Any],
    lines: list[BonusLine],
) -> int:
    """Insert one imported shift with its recorded (or computed) pay and bonuses; its id."""
    employee_id = employees[shift["employee"]]
    employee = await repo.get_employee(conn, employee_id)
    hourly = (
        employee["hourly_rate"]
        if employee["hourly_rate"] is not None
        else settings.hourly_rates.get(employee["role"], 0)
    )
    rank = settings.rank(await repo.rank_of(conn, employee_id, shift["day"].replace(day=1)))
    worked = int((shift["end"] - shift["start"]).total_seconds())
    pay = shift_pay(
        settings,
        sales=shift["sales"],
        worked_seconds=worked,
        local_date=shift["day"],
        hourly_rate=hourly,
        rank=rank,
    )
    commission = shift["commission"] if shift["commission"] is not None else pay.commission
    base = shift["base"] if shift["base"] is not None else 0
    bonus_total = sum(line.amount for line in lines)
    pay = msgspec.structs.replace(
        pay,
        commission=commission,
        base_pay=base,
        bonuses=lines,
        bonus_total=bonus_total,
        total=base + commission + bonus_total,
    )
    shift_id = await conn.fetchval(
        "INSERT INTO shifts (employee_id, status, opened_at, local_date, currency, external_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        employee_id,
        shift["status"],
        shift["start"],
        shift["day"],
        settings.currency,
        shift["external"],
    )
    await repo.write_pay(
        conn,
        shift_id,
        status=shift["status"],
        opened_at=shift["start"],
        closed_at=shift["end"],
        local_date=shift["day"],
        worked_seconds=worked,
        sales=shift["sales"],
        pay=pay,
    )
    await repo.add_history(conn, shift_id, None, shift["status"], None, "system", "import")
    return shift_id


async def record_import(
    conn: repo.Conn, report: ImportReport, paths: list[Path], dry_run: bool
) -> None:
    """Log one run of :func:`run_import` in ``sync_log`` (``Importer.record``).

    Args:
        conn: a connection in a transaction of the tenant's schema.
        report: what the run returned (its ``counts`` per kind of row, its bad rows).
        paths: the files it read.
        dry_run: the run was a ``--dry-run`` (its writes were rolled back).
    """
    await repo.insert_sync_log(
        conn,
        source="import",
        dry_run=dry_run,
        files=[str(p) for p in paths],
        counts=report.counts,
        errors=len(report.issues),
    )
