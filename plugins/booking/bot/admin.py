"""The admins' bot commands (``/today``, ``/bookings``, ``/block``, ``/panel``) and status buttons."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, Message

from core import Tenant, TransitionError
from core.errors import ApiError
from core.kit import error_text
from plugins.booking import keyboards as kb
from plugins.booking import notify, service
from plugins.booking.bot._common import _day, _move_refused, _now

__all__ = [
    "admin_button_refused",
    "block",
    "bookings_of_day",
    "panel",
    "status_pressed",
    "today",
]


async def _admin_list(message: Message, tenant: Tenant, day: date) -> None:
    views = await service.bookings_on(tenant, day)
    if not views:
        await message.answer(tenant.text("booking.admin_none", date=_day(tenant, day)))
        return
    for view in views:
        await message.answer(
            notify.admin_item(tenant, view), reply_markup=notify.admin_keyboard(tenant, view)
        )


async def today(message: Message, tenant: Tenant) -> None:
    """``/today`` (admins): today's bookings, each with its status buttons."""
    await _admin_list(message, tenant, _now().astimezone(tenant.tz).date())


async def bookings_of_day(message: Message, command: CommandObject, tenant: Tenant) -> None:
    """``/bookings YYYY-MM-DD`` (admins): that day's bookings with status buttons."""
    try:
        day = date.fromisoformat((command.args or "").strip())
    except ValueError:
        await message.answer(tenant.text("booking.bookings_usage"))
        return
    await _admin_list(message, tenant, day)


async def block(message: Message, command: CommandObject, tenant: Tenant) -> None:
    """``/block YYYY-MM-DD HH:MM-HH:MM [resource] [reason]`` (admins): block a time."""
    parts = (command.args or "").split()
    try:
        day = date.fromisoformat(parts[0])
        first, last = parts[1].split("-")
        start = datetime.combine(day, time.fromisoformat(first), tzinfo=tenant.tz)
        end = datetime.combine(day, time.fromisoformat(last), tzinfo=tenant.tz)
    except (IndexError, ValueError):
        await message.answer(tenant.text("booking.block_usage"))
        return
    if end <= start:
        end += timedelta(days=1)  # "22:00-02:00" runs past midnight
    resource = parts[2] if len(parts) > 2 and parts[2] != "*" else None
    reason = " ".join(parts[3:])
    try:
        created = await service.create_block(
            tenant, start, end, resource, reason, created_by=f"telegram:{message.from_user.id}"
        )
    except ApiError as problem:
        if problem.code == "booking.conflict":
            ids = ", ".join(f"#{i}" for i in problem.extensions.get("bookings", []))
            await message.answer(tenant.text("booking.block_conflict", ids=ids))
        else:
            await message.answer(tenant.text("booking.problem", detail=error_text(tenant, problem)))
        return
    await message.answer(
        tenant.text(
            "booking.blocked",
            date=_day(tenant, day),
            range=parts[1],
            target=resource or tenant.text("booking.whole_place"),
            id=created.id,
        )
    )


async def status_pressed(
    callback: CallbackQuery, callback_data: kb.StatusAction, tenant: Tenant
) -> None:
    """An admin's status button: change through the tenant's machine, show the new buttons."""
    try:
        view, _ = await service.change_status(
            tenant,
            callback_data.booking_id,
            callback_data.to,
            role="admin",
            actor_id=callback.from_user.id,
        )
    except TransitionError as exc:
        await callback.answer(_move_refused(tenant, callback_data.booking_id, exc), show_alert=True)
        return
    except ApiError as problem:
        await callback.answer(
            tenant.text("booking.not_allowed", detail=error_text(tenant, problem)),
            show_alert=True,
        )
        return
    await callback.answer(notify.status_label(tenant, view.status))
    await callback.message.answer(
        notify.admin_item(tenant, view), reply_markup=notify.admin_keyboard(tenant, view)
    )


async def panel(message: Message, tenant: Tenant) -> None:
    """``/panel`` (admins, private chat): a one-time link signing them in to the live panel."""
    from aiogram.types import LinkPreviewOptions

    from core.web.links import LINK_SECONDS, signin_link

    if message.chat.type != "private":
        await message.answer(tenant.text("booking.web.panel_private"))
        return
    user = message.from_user
    fields = {"first_name": user.first_name, "last_name": user.last_name, "username": user.username}
    url = await signin_link(
        tenant, user.id, "booking/admin", {k: v for k, v in fields.items() if v}
    )
    await message.answer(
        tenant.text("booking.web.panel_link", url=url, minutes=LINK_SECONDS // 60),
        # A link preview would fetch the page; the link is redeemed only by its button, still.
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


async def admin_button_refused(callback: CallbackQuery, tenant: Tenant) -> None:
    """An admin's status button pressed by someone who is not (a forwarded message): refuse."""
    await callback.answer(tenant.text("booking.admin_only"), show_alert=True)
