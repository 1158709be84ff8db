"""Reading the old spreadsheets' CSV exports: sheet kinds, values, settings sheets.

The rules of the files are in :mod:`plugins.shifts.service.imports`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import msgspec

from core.imports import ImportIssue, ImportReport
from core.storage.statuses import StatusMachine, StatusMachineSpec
from plugins.shifts.amounts import parse_amount
from plugins.shifts.config import RateBand, ShiftsSettings, basis_points, check_rate_table
from plugins.shifts.machine import SHIFT_ENTITY

__all__ = [
    "KINDS",
    "Bad",
    "Row",
    "compare_settings",
    "details",
    "read_settings",
    "read_sheets",
    "to_date",
    "to_money",
    "to_time",
]


KINDS: dict[str, tuple[str, ...]] = {
    "employees": ("employee_id", "name"),
    "shifts": ("shift_id", "employee_id", "date", "clock_in", "clock_out", "status"),
    "bonuses": ("shift_id", "bonus", "amount"),
    "employee_ranks": ("employee_id", "month", "rank"),
    "rates": ("from", "to", "percent"),
    "ranks": ("rank", "threshold"),
}
"""Kind of file -> the columns its header must have (tried in this order)."""

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Bad(ValueError):
    """A value of a row that cannot be imported."""


class Row(msgspec.Struct):
    file: str
    line: int
    values: dict[str, str]


def _kind(header: Sequence[str]) -> str | None:
    columns = set(header)
    return next((k for k, need in KINDS.items() if set(need) <= columns), None)


def read_sheets(paths: Sequence[Path], report: ImportReport) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {kind: [] for kind in KINDS}
    for path in paths:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            kind = _kind(header)
            if kind is None:
                report.issues.append(
                    ImportIssue(
                        1,
                        "unknown sheet: the header matches none of " + ", ".join(KINDS),
                        str(path),
                    )
                )
                continue
            reader.fieldnames = header
            for record in reader:
                values = {k: (v or "").strip() for k, v in record.items() if k}
                if any(values.values()):
                    rows[kind].append(Row(str(path), reader.line_num, values))
    return rows


def to_money(text: str, currency: str, column: str) -> int:
    amount = parse_amount(text, currency)
    if amount is None:
        raise Bad(f"{column}: {text!r} is not an amount")
    return amount


def to_date(text: str, column: str) -> date:
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise Bad(f"{column}: {text!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")


def to_time(text: str, column: str) -> time:
    match = _TIME.match(text)
    if not match:
        raise Bad(f"{column}: {text!r} is not a time (HH:MM)")
    return time(int(match.group(1)), int(match.group(2)))


def read_settings(config: Any) -> tuple[ShiftsSettings, StatusMachine]:
    settings = msgspec.convert(config.features.get("shifts") or {}, ShiftsSettings, strict=False)
    override = config.statuses.get(SHIFT_ENTITY.name)
    spec = (
        msgspec.convert(override, StatusMachineSpec, strict=False)
        if override
        else SHIFT_ENTITY.default
    )
    return settings, StatusMachine(SHIFT_ENTITY, spec)


def compare_settings(
    rows: dict[str, list[Row]],
    settings: ShiftsSettings,
    report: ImportReport,
    bad: Callable[[Row, str], None],
) -> None:
    """Check the rates and ranks sheets and say whether the YAML agrees (nothing is written)."""
    if rows["rates"]:
        bands = []
        for row in rows["rates"]:
            v = row.values
            try:
                lower = to_money(v["from"], settings.currency, "from")
                upper = to_money(v["to"], settings.currency, "to") if v["to"] else None
                percent = float(v["percent"].replace(",", ".").rstrip("%"))
                basis_points(percent)
                bands.append(RateBand(from_=lower, to=upper, percent=percent))
            except (Bad, ValueError) as exc:
                bad(row, f"rates: {exc}")
        try:
            check_rate_table(bands)
        except ValueError as exc:
            bad(rows["rates"][0], str(exc))
        else:
            same = sorted((b.from_, b.to, b.basis_points) for b in bands) == sorted(
                (b.from_, b.to, b.basis_points) for b in settings.commission.rates
            )
            report.details.append(
                "rates: the sheet matches features.shifts.commission.rates"
                if same
                else "rates: the sheet differs from features.shifts.commission.rates; put this in the YAML: "
                + msgspec.json.encode(
                    [{"from": b.from_, "to": b.to, "percent": b.percent} for b in bands]
                ).decode()
            )
    if rows["ranks"]:
        yaml = {r.id: r.threshold for r in settings.ranks}
        sheet = {}
        for row in rows["ranks"]:
            try:
                sheet[row.values["rank"]] = (
                    to_money(row.values["threshold"], settings.currency, "threshold")
                    if settings.rank_basis == "sales"
                    else int(row.values["threshold"])
                )
            except (Bad, ValueError) as exc:
                bad(row, f"ranks: {exc}")
        report.details.append(
            "ranks: the sheet matches features.shifts.ranks"
            if sheet == yaml
            else f"ranks: the sheet differs from features.shifts.ranks (sheet {sheet}, YAML {yaml})"
        )


def details(counts: dict[str, dict[str, int]], note: str | None) -> list[str]:
    lines = [
        f"{kind}: {c['new']} new, {c['existing']} already present" for kind, c in counts.items()
    ]
    return [*lines, note] if note else lines
