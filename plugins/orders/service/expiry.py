"""Expiry: orders left in the initial state too long move to ``expiry_status`` (the ``orders.expire`` job)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import Tenant, TransitionError
from core.actors import SYSTEM_ACTOR
from plugins.orders import repository as repo
from plugins.orders.service.reads import settings_of
from plugins.orders.service.transitions import change_status

__all__ = ["expire_pending"]


async def expire_pending(
    tenant: Tenant, *, now: datetime | None = None, limit: int = 500
) -> list[int]:
    """Move orders left in the initial state too long to ``expiry_status`` (role ``system``).

    The ``orders.expire`` cron job calls this every minute; tests call it with
    ``now``. An order accepted in the meantime is skipped (``expected``), and a
    tenant machine that does not allow the move is logged, not raised.

    Args:
        tenant: the tenant.
        now: the current time (aware, UTC); default the clock.
        limit: most orders handled per run.

    Returns:
        Ids of the orders expired.
    """
    settings = settings_of(tenant)
    if settings.expire_after_minutes == 0:
        return []
    machine = tenant.statuses["orders"]
    cutoff = (now or datetime.now(UTC)) - timedelta(minutes=settings.expire_after_minutes)
    async with tenant.db.acquire() as conn:
        stale = await repo.stale_order_ids(conn, machine.initial, cutoff, limit)
    expired = []
    for order_id in stale:
        try:
            await change_status(
                tenant,
                order_id,
                settings.expiry_status,
                actor=SYSTEM_ACTOR,
                reason="expired",
                expected=machine.initial,
            )
        except TransitionError as exc:
            tenant.log.warning("order_expiry_refused", order_id=order_id, reason=exc.reason)
            continue
        expired.append(order_id)
    if expired:
        tenant.log.info("orders_expired", orders=expired)
    return expired
