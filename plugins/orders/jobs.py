"""Background jobs of the orders plugin."""

from __future__ import annotations

from core import JobSpec, Tenant
from plugins.orders.service import expire_pending

__all__ = ["JOBS", "expire_job"]


async def expire_job(tenant: Tenant) -> None:
    """Cron body of ``orders.expire``: see :func:`plugins.orders.service.expire_pending`."""
    await expire_pending(tenant)


JOBS = [JobSpec(name="orders.expire", function=expire_job, cron="* * * * *", timeout=55)]
"""``orders.expire`` runs every minute (UTC) for each tenant enabling orders."""
