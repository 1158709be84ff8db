"""Reminders: which statuses get one, queueing the ``booking.remind`` job, sending it once."""

from __future__ import annotations

from datetime import timedelta

from core import Tenant
from plugins.booking import repository as repo
from plugins.booking.service._common import _now
from plugins.booking.service.reads import get_booking
from plugins.booking.views import PLUGIN, BookingView, settings_of

__all__ = ["remindable_statuses", "schedule_reminder", "send_reminder"]


def remindable_statuses(tenant: Tenant) -> list[str]:
    """Statuses in which a booking still gets its reminder (held, not final)."""
    settings = settings_of(tenant)
    machine = tenant.statuses[PLUGIN]
    return [
        s for s in machine.states if s not in settings.released_statuses and not machine.is_final(s)
    ]


async def schedule_reminder(tenant: Tenant, view: BookingView) -> bool:
    """Queue ``booking.remind`` for ``reminder_minutes`` before the start.

    Skipped (False) when reminders are off, the customer is unknown, or the
    moment has passed. The job key ``remind:<id>`` dedupes across runtimes.
    """
    settings = settings_of(tenant)
    if not settings.reminder_minutes or view.user_id is None:
        return False
    at = view.starts_at - timedelta(minutes=settings.reminder_minutes)
    if at <= _now():
        return False
    try:
        return await tenant.enqueue(
            "booking.remind", at=at, key=f"remind:{view.id}", booking_id=view.id
        )
    except RuntimeError:
        tenant.log.warning("booking_reminder_not_queued", booking_id=view.id, reason="no job queue")
        return False


async def send_reminder(tenant: Tenant, booking_id: int) -> bool:
    """Send a booking's reminder once, if it is still in a remindable status.

    Returns:
        True when this call sent it; False when cancelled, already sent or past.
    """
    # Imported here: notify's keyboards bring in aiogram, which the rest of the
    # service does not need (notify itself reads only plugins.booking.views).
    from plugins.booking import notify

    async with tenant.db.acquire() as conn:
        row = await repo.mark_reminded(conn, booking_id, remindable_statuses(tenant))
    if row is None:
        return False
    await notify.reminder(tenant, await get_booking(tenant, booking_id))
    return True
