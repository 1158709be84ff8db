"""Monthly ranks and the reminder about forgotten shifts (the plugin's cron jobs).

Ranks: last month's counted sales (or shifts, ``rank_basis``) give each
active employee the highest rank whose ``threshold`` they reach, held for the
current month and stored per employee per month (``employee_ranks``).
``shifts.ranks`` runs every hour (UTC cron ``7 * * * *``) because a month
starts at local midnight of the tenant's zone, which is not a UTC hour one
cron line could name for every tenant; a run finds this local month's ranks
done and returns at once.

Once per month even with several runtimes: the core's job runner queues a
cron tick once per tenant (its key names the minute), and the run itself
claims the month in ``rank_runs`` inside the transaction that writes the
ranks, so two runs at once (two runtimes, a retried job) give one result:
the second waits on the first's row and then writes nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.kit import format_time, send_message
from plugins.shifts import repository as repo
from plugins.shifts.service._unit import change
from plugins.shifts.service.employees import settings_of
from plugins.shifts.service.reports import current_month

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["compute_ranks", "rank_job", "remind_job", "remind_open_shifts"]


def _previous(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


async def compute_ranks(tenant: Tenant, month: date) -> dict[str, Any] | None:
    """Give every active employee a rank for ``month`` from the month before.

    Returns:
        ``{"month", "employees", "ranks": {employee_id: rank or None}}``, or
        None when ``month`` was computed already (by this or another run).
    """
    settings = settings_of(tenant)
    async with change(tenant) as unit:
        achieved = await repo.achieved(
            unit.conn, _previous(month), month, settings.counted_statuses
        )
        if not await repo.claim_rank_run(unit.conn, month, len(achieved)):
            return None
        rows = []
        for row in achieved:
            value = row["sales"] if settings.rank_basis == "sales" else row["shifts"]
            rank = settings.rank_for(value)
            rows.append((row["employee_id"], rank.id if rank else None, value))
        await repo.upsert_ranks(unit.conn, month, rows)
        await unit.publish(
            "shifts.ranks_computed", {"month": f"{month:%Y-%m}", "employees": len(rows)}
        )
    tenant.log.info("shifts_ranks_computed", month=f"{month:%Y-%m}", employees=len(rows))
    return {
        "month": f"{month:%Y-%m}",
        "employees": len(rows),
        "ranks": {employee_id: rank for employee_id, rank, _ in rows},
    }


async def rank_job(tenant: Tenant) -> None:
    """Cron body of ``shifts.ranks``: this local month's ranks, unless done."""
    await compute_ranks(tenant, current_month(tenant))


async def remind_open_shifts(tenant: Tenant, now: datetime | None = None) -> int:
    """Remind employees (and managers) of shifts open over ``remind_after_hours``; how many.

    Each shift is reminded once (``reminded_at`` is set in the same statement
    that picks it).
    """
    settings = settings_of(tenant)
    if not settings.remind_after_hours:
        return 0
    now = now or datetime.now(UTC)
    async with tenant.db.transaction() as conn:
        due = await repo.open_shifts_to_remind(
            conn, now - timedelta(hours=settings.remind_after_hours)
        )
        managers = [r["user_id"] for r in await repo.staff_user_ids(conn) if r["role"] == "manager"]
    managers = sorted({*managers, *tenant.config.bot.admins})
    for shift in due:
        opened = format_time(shift["opened_at"], tenant.locale, tz=tenant.tz)
        if shift["user_id"] is not None:
            await send_message(
                tenant,
                shift["user_id"],
                tenant.text("shifts.remind_employee", id=shift["id"], opened=opened),
            )
        for manager in managers:
            if manager != shift["user_id"]:
                await send_message(
                    tenant,
                    manager,
                    tenant.text(
                        "shifts.remind_manager",
                        id=shift["id"],
                        name=shift["employee_name"],
                        opened=opened,
                    ),
                )
    return len(due)


async def remind_job(tenant: Tenant) -> None:
    """Cron body of ``shifts.remind``."""
    await remind_open_shifts(tenant)
