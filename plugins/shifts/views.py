"""How shifts, months and reports read in the bot (texts from :mod:`plugins.shifts.texts`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from core.kit import format_date, format_datetime, format_money, format_time, status_label

if TYPE_CHECKING:
    from core import Tenant

__all__ = [
    "duration",
    "manager_keyboard",
    "money",
    "month_text",
    "report_text",
    "shift_card",
    "shift_line",
    "state_label",
]


def money(tenant: Tenant, amount: int) -> str:
    """``amount`` minor units of the tenant's shifts currency, in its locale."""
    return format_money(amount, tenant.settings_for("shifts").currency, tenant.locale)


def state_label(tenant: Tenant, status: str) -> str:
    """``shift.status.<status>`` in the tenant's words."""
    return status_label(tenant, "shift", status)


def duration(tenant: Tenant, seconds: int) -> str:
    """``8 h 30 min`` (``shifts.duration``)."""
    minutes = seconds // 60
    return tenant.text("shifts.duration", hours=minutes // 60, minutes=minutes % 60)


def shift_card(tenant: Tenant, shift: dict[str, Any]) -> str:
    """A shift with its sales, commission, base pay, bonuses, total and status."""
    opened = datetime.fromisoformat(shift["opened_at"])
    lines = [
        tenant.text(
            "shifts.card_title",
            id=shift["id"],
            name=shift["employee_name"],
            date=format_date(opened, tenant.locale, tz=tenant.tz),
        )
    ]
    if shift["closed_at"]:
        closed = datetime.fromisoformat(shift["closed_at"])
        lines.append(
            tenant.text(
                "shifts.card_times",
                opened=format_time(opened, tenant.locale, tz=tenant.tz),
                closed=format_time(closed, tenant.locale, tz=tenant.tz),
                duration=duration(tenant, shift["worked_seconds"]),
            )
        )
        settings = tenant.settings_for("shifts")
        for category in settings.categories:
            lines.append(
                tenant.text(
                    "shifts.card_category",
                    name=category.name,
                    amount=money(tenant, shift["sales"].get(category.id, 0)),
                )
            )
        lines.append(tenant.text("shifts.card_sales", amount=money(tenant, shift["sales_total"])))
        lines.append(
            tenant.text(
                f"shifts.card_commission_{settings.commission.mode}",
                amount=money(tenant, shift["commission"]),
                percent=f"{shift['rate_percent']:g}",
            )
        )
        if shift["base_pay"]:
            lines.append(
                tenant.text("shifts.card_base_pay", amount=money(tenant, shift["base_pay"]))
            )
        for bonus in shift["bonuses"]:
            lines.append(
                tenant.text(
                    "shifts.card_bonus", name=bonus["name"], amount=money(tenant, bonus["amount"])
                )
            )
        lines.append(tenant.text("shifts.card_total", amount=money(tenant, shift["total"])))
    else:
        lines.append(
            tenant.text(
                "shifts.card_open_since", opened=format_time(opened, tenant.locale, tz=tenant.tz)
            )
        )
    lines.append(tenant.text("shifts.card_status", status=state_label(tenant, shift["status"])))
    return "\n".join(lines)


def shift_line(tenant: Tenant, shift: dict[str, Any]) -> str:
    """One line of ``/myshifts``."""
    return tenant.text(
        "shifts.my_line",
        id=shift["id"],
        when=format_datetime(
            datetime.fromisoformat(shift["opened_at"]), tenant.locale, tz=tenant.tz, format="dd.MM"
        ),
        sales=money(tenant, shift["sales_total"]),
        total=money(tenant, shift["total"]),
        status=state_label(tenant, shift["status"]),
    )


def month_text(tenant: Tenant, month: dict[str, Any]) -> str:
    """``/mymonth``: the month so far, the rank held and how far the next one is."""
    lines = [
        tenant.text(
            "shifts.month_summary",
            month=month["month"],
            shifts=month["shifts"],
            duration=duration(tenant, month["worked_seconds"]),
            sales=money(tenant, month["sales"]),
            commission=money(tenant, month["commission"]),
            bonuses=money(tenant, month["bonuses"]),
            total=money(tenant, month["total"]),
        )
    ]
    rank = month["rank"]
    lines.append(
        tenant.text("shifts.month_rank", rank=rank.name)
        if rank is not None
        else tenant.text("shifts.month_no_rank")
    )
    upcoming = month["next_rank"]
    if upcoming is not None:
        basis = tenant.settings_for("shifts").rank_basis
        left = money(tenant, month["to_next"]) if basis == "sales" else str(month["to_next"])
        lines.append(tenant.text(f"shifts.month_to_next_{basis}", rank=upcoming.name, left=left))
    elif tenant.settings_for("shifts").ranks:
        lines.append(tenant.text("shifts.month_top_rank"))
    return "\n".join(lines)


def report_text(tenant: Tenant, report: dict[str, Any]) -> str:
    """``/report``: a line per employee and the team's totals."""
    if not report["employees"]:
        return tenant.text("shifts.report_empty", month=report["month"])
    lines = [tenant.text("shifts.report_title", month=report["month"])]
    for row in [*report["employees"], {**report["totals"], "employee_name": None}]:
        lines.append(
            tenant.text(
                "shifts.report_line",
                name=row["employee_name"] or tenant.text("shifts.report_team"),
                shifts=row["shifts"],
                duration=duration(tenant, row["worked_seconds"]),
                sales=money(tenant, row["sales"]),
                commission=money(tenant, row["commission"]),
                bonuses=money(tenant, row["bonuses"]),
                total=money(tenant, row["total"]),
            )
        )
    return "\n".join(lines)


def manager_keyboard(tenant: Tenant, shift: dict[str, Any]) -> InlineKeyboardMarkup | None:
    """Approve / Reject / Correct for a shift awaiting approval (``sm:`` and ``sx:`` data)."""
    settings = tenant.settings_for("shifts")
    if shift["status"] != settings.closed_status:
        return None
    seen = shift["status"]
    row = [
        InlineKeyboardButton(
            text=tenant.text("shifts.approve"), callback_data=f"sm:{shift['id']}:{seen}:a"
        ),
        InlineKeyboardButton(
            text=tenant.text("shifts.reject"), callback_data=f"sm:{shift['id']}:{seen}:r"
        ),
        InlineKeyboardButton(text=tenant.text("shifts.correct"), callback_data=f"sx:{shift['id']}"),
    ]
    return InlineKeyboardMarkup(inline_keyboard=[row])
