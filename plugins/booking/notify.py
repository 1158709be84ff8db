"""Messages the booking plugin sends on its own: admin notices, customer updates, reminders.

Called from the plugin's ``on_event`` (after the change committed) and from
the reminder job. Sends go through the core kit (``core.kit.send_message``):
a user who blocked the bot is marked blocked, a 429 is waited out, and a
failure is logged and does not undo anything.
"""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardMarkup

from core import Tenant
from core.kit import format_datetime, format_money, send_message
from core.kit import status_label as kit_status_label
from plugins.booking.keyboards import rating_keyboard, status_keyboard
from plugins.booking.views import PLUGIN, BookingView, settings_of

__all__ = [
    "admin_keyboard",
    "admins_new_booking",
    "admins_status_changed",
    "customer_status_changed",
    "describe",
    "format_price",
    "reminder",
    "status_label",
    "when",
]


def status_label(tenant: Tenant, status: str) -> str:
    """The status's label in the tenant's locale (``booking.status.<status>``), or the status itself."""
    return kit_status_label(tenant, PLUGIN, status)


def when(tenant: Tenant, view: BookingView) -> str:
    """Local ``DD.MM.YYYY HH:MM`` of the booking's start (the tenant's zone)."""
    return format_datetime(view.starts_at, tenant.locale, tz=tenant.tz, format="dd.MM.yyyy HH:mm")


def format_price(tenant: Tenant, minor_units: int) -> str:
    """A price in minor units of the booking currency, as the tenant's locale writes it."""
    return format_money(minor_units, settings_of(tenant).currency, tenant.locale)


def describe(tenant: Tenant, view: BookingView) -> str:
    """What is booked: guests and tables, or service, staff and price."""
    settings = settings_of(tenant)
    if settings.kind == "tables":
        tables = ", ".join(view.resources)
        return tenant.text("booking.what_party", party=view.party_size) + (
            f" ({tables})" if tables else ""
        )
    spec = settings.service(view.service or "")
    staff = ", ".join(
        (m.name if (m := settings.staff_member(code)) else code) for code in view.resources
    )
    return tenant.text(
        "booking.what_service",
        service=spec.name if spec else view.service,
        staff=staff,
        price=format_price(tenant, view.price),
    )


def admin_item(tenant: Tenant, view: BookingView) -> str:
    """One booking as an admin list line: id, local time, what, who, phone, status."""
    return tenant.text(
        "booking.admin_item",
        id=view.id,
        when=when(tenant, view),
        what=describe(tenant, view),
        name=view.customer_name,
        phone=view.phone,
        status=status_label(tenant, view.status),
    )


def admin_keyboard(tenant: Tenant, view: BookingView) -> InlineKeyboardMarkup | None:
    """Buttons for the statuses an admin may move this booking to (the tenant's machine)."""
    settings = settings_of(tenant)
    machine = tenant.statuses[PLUGIN]
    targets = []
    for status in machine.allowed(
        view.status, "admin", {"kind": settings.kind, "source": view.source}
    ):
        if status == settings.cancelled_status and view.status == machine.initial:
            targets.append((status, tenant.text("booking.reject")))
        else:
            targets.append((status, status_label(tenant, status)))
    return status_keyboard(view.id, targets)


async def _send(tenant: Tenant, chat_id: int, text: str, markup: Any = None) -> None:
    await send_message(tenant, chat_id, text, reply_markup=markup)


async def admins_new_booking(tenant: Tenant, view: BookingView) -> None:
    """Tell every admin of a new booking, with Confirm/Reject (or status) buttons."""
    text = tenant.text(
        "booking.admin_new",
        id=view.id,
        when=when(tenant, view),
        what=describe(tenant, view),
        name=view.customer_name,
        phone=view.phone,
        status=status_label(tenant, view.status),
    )
    markup = admin_keyboard(tenant, view)
    for admin in tenant.config.bot.admins:
        await _send(tenant, admin, text, markup)


async def customer_status_changed(tenant: Tenant, view: BookingView) -> None:
    """Tell the customer their booking changed; after completion, ask for a 1-5 rating (once)."""
    if view.user_id is None:
        return
    settings = settings_of(tenant)
    if view.status == settings.completed_status:
        from plugins.booking import repository

        async with tenant.db.acquire() as conn:
            first = await repository.mark_feedback_requested(conn, view.id)
        if first:
            await _send(tenant, view.user_id, tenant.text("booking.rate"), rating_keyboard(view.id))
        return
    await _send(
        tenant,
        view.user_id,
        tenant.text(
            "booking.status_changed",
            id=view.id,
            when=when(tenant, view),
            status=status_label(tenant, view.status),
        ),
    )


async def admins_status_changed(tenant: Tenant, view: BookingView, actor_role: str) -> None:
    """Tell every admin that a customer (or the system) changed a booking."""
    text = tenant.text(
        "booking.admin_changed",
        id=view.id,
        when=when(tenant, view),
        status=status_label(tenant, view.status),
        actor=tenant.text(f"booking.role.{actor_role}"),
    )
    for admin in tenant.config.bot.admins:
        await _send(tenant, admin, text)


async def reminder(tenant: Tenant, view: BookingView) -> None:
    """Send the reminder of an upcoming booking to its customer."""
    if view.user_id is not None:
        await _send(
            tenant,
            view.user_id,
            tenant.text("booking.reminder", id=view.id, when=when(tenant, view)),
        )
