"""Telegram notifications for ``shifts.*`` events (the ``on_event`` subscriber).

* ``shifts.closed``: every manager (employees with role ``manager`` who
  joined, and ``bot.admins``) gets the shift's card with Approve / Reject /
  Correct;
* ``shifts.status_changed`` and ``shifts.corrected``: the employee is told.

Delivery is at least once; an event carrying a stable ``id`` (the core's
durable events) is handled once per tenant: a Redis ``SET NX`` on the id
(kept :data:`SEEN_TTL_SECONDS`) skips a redelivery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.kit import send_message
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting
from plugins.shifts.service.shifts import load_shift
from plugins.shifts.views import manager_keyboard, shift_card, state_label

if TYPE_CHECKING:
    from core import DomainEvent, Tenant

__all__ = ["SEEN_TTL_SECONDS", "handle_event"]

SEEN_TTL_SECONDS = 7 * 86400
_READER = Acting(role="system")


async def _first_delivery(tenant: Tenant, event: DomainEvent) -> bool:
    event_id = getattr(event, "id", None)
    if event_id is None or tenant.redis is None:
        return True
    return bool(
        await tenant.redis.set(
            tenant.key("shifts", "notified", event_id), "1", nx=True, ex=SEEN_TTL_SECONDS
        )
    )


async def _manager_ids(tenant: Tenant) -> list[int]:
    async with tenant.db.acquire() as conn:
        rows = await repo.staff_user_ids(conn)
    return sorted(
        {*(r["user_id"] for r in rows if r["role"] == "manager"), *tenant.config.bot.admins}
    )


async def handle_event(tenant: Tenant, event: DomainEvent) -> None:
    """Send the notifications of one ``shifts.*`` event."""
    if event.name not in ("shifts.closed", "shifts.status_changed", "shifts.corrected"):
        return
    if not await _first_delivery(tenant, event):
        return
    shift = await load_shift(tenant, _READER, event.payload["shift_id"])
    if event.name == "shifts.closed":
        for manager in await _manager_ids(tenant):
            await send_message(
                tenant,
                manager,
                tenant.text("shifts.to_approve") + "\n" + shift_card(tenant, shift),
                reply_markup=manager_keyboard(tenant, shift),
            )
        return
    async with tenant.db.acquire() as conn:
        employee = await repo.get_employee(conn, shift["employee_id"])
    if employee is None or employee["user_id"] is None:
        return
    if event.name == "shifts.status_changed":
        text = tenant.text(
            "shifts.your_shift_moved", id=shift["id"], status=state_label(tenant, shift["status"])
        )
        if event.payload.get("reason"):
            text += "\n" + tenant.text("shifts.reason_line", reason=event.payload["reason"])
    else:
        text = tenant.text("shifts.your_shift_corrected", id=shift["id"])
        text += "\n" + shift_card(tenant, shift)
    await send_message(tenant, employee["user_id"], text)
