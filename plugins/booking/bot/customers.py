"""A customer's own bookings in the bot: ``/mybookings``, Cancel, and the 1-5 rating."""

from __future__ import annotations

from datetime import timedelta

from aiogram.types import CallbackQuery, Message

from core import Tenant, TransitionError
from core.errors import ApiError
from plugins.booking import keyboards as kb
from plugins.booking import notify, repository, service
from plugins.booking.bot._common import _move_refused, _now

__all__ = ["cancel_pressed", "my_bookings", "rate_pressed"]


async def my_bookings(message: Message, tenant: Tenant) -> None:
    """``/mybookings``: upcoming bookings, each with Cancel while the cutoff allows it."""
    settings = service.settings_of(tenant)
    machine = tenant.statuses[service.PLUGIN]
    views = await service.upcoming_for(tenant, message.from_user.id)
    if not views:
        await message.answer(tenant.text("booking.mine_empty"))
        return
    cutoff = _now() + timedelta(minutes=settings.cancellation_cutoff_minutes)
    for view in views:
        text = tenant.text(
            "booking.mine_item",
            id=view.id,
            when=notify.when(tenant, view),
            what=notify.describe(tenant, view),
            status=notify.status_label(tenant, view.status),
        )
        can_cancel = (
            settings.cancelled_status in machine.allowed(view.status, "customer")
            and view.starts_at > cutoff
        )
        markup = (
            kb.cancel_keyboard(view.id, tenant.text("booking.cancel_button", id=view.id))
            if can_cancel
            else None
        )
        await message.answer(text, reply_markup=markup)


async def cancel_pressed(
    callback: CallbackQuery, callback_data: kb.CancelBooking, tenant: Tenant
) -> None:
    """A customer's Cancel: through the tenant's machine and the cutoff."""
    settings = service.settings_of(tenant)
    user_id = callback.from_user.id
    try:
        view, _ = await service.change_status(
            tenant,
            callback_data.booking_id,
            settings.cancelled_status,
            role="customer",
            actor_id=user_id,
            owner_id=user_id,
        )
    except ApiError as problem:
        key = (
            "booking.too_late"
            if problem.code == "booking.cancellation_cutoff"
            else "booking.outdated"
        )
        await callback.answer()
        await callback.message.answer(tenant.text(key, id=callback_data.booking_id))
        return
    except TransitionError as exc:
        await callback.answer()
        await callback.message.answer(_move_refused(tenant, callback_data.booking_id, exc))
        return
    await callback.answer()
    await callback.message.answer(
        tenant.text("booking.cancelled_by_you", id=view.id, when=notify.when(tenant, view))
    )


async def rate_pressed(callback: CallbackQuery, callback_data: kb.Rate, tenant: Tenant) -> None:
    """A 1-5 rating of the customer's own completed booking, stored once."""
    settings = service.settings_of(tenant)
    if not 1 <= callback_data.rating <= 5:
        await callback.answer(tenant.text("booking.outdated"), show_alert=True)
        return
    try:
        view = await service.get_booking(
            tenant, callback_data.booking_id, owner_id=callback.from_user.id
        )
    except ApiError:
        await callback.answer(tenant.text("booking.outdated"), show_alert=True)
        return
    if view.status != settings.completed_status:
        await callback.answer(tenant.text("booking.outdated"), show_alert=True)
        return
    async with tenant.db.acquire() as conn:
        await repository.insert_feedback(conn, view.id, callback.from_user.id, callback_data.rating)
    await callback.answer()
    await callback.message.answer(tenant.text("booking.rated"))
