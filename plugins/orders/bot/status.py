"""Order status in the bot: ``/myorders`` and the status buttons of customers, partners and admins (``os:...``)."""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from core import Actor, Tenant, TransitionError
from core.errors import ApiError
from core.kit import format_datetime
from plugins.orders import repository as repo
from plugins.orders.bot.keyboards import _keyboard, _row_id
from plugins.orders.service import change_status, load_order, order_views
from plugins.orders.views import ROLE_CODES, money, order_card, status_keyboard, status_label

__all__ = ["MY_ORDERS_SHOWN", "my_orders", "status_button"]

MY_ORDERS_SHOWN = 5


def _move_refused(tenant: Tenant, order_id: int, exc: TransitionError) -> str:
    """``orders.refused`` for a move the machine refused, with the states' labels."""
    reason = tenant.text(
        "orders.move_refused",
        id=order_id,
        current=status_label(tenant, exc.current),
        target=status_label(tenant, exc.target),
    )
    return tenant.text("orders.refused", reason=reason)


async def my_orders(message: Message, tenant: Tenant) -> None:
    """``/myorders``: the latest orders with their status and the customer's allowed moves."""
    if message.from_user is None:
        return
    async with tenant.db.acquire() as conn:
        rows = await repo.customer_orders(conn, message.from_user.id, MY_ORDERS_SHOWN)
        orders = await order_views(conn, rows)
        stores = {s["id"]: s["name"] for s in await repo.list_stores(conn)}
    if not orders:
        await message.answer(tenant.text("orders.no_orders"))
        return
    text = [tenant.text("orders.my_title")]
    buttons: list[list[InlineKeyboardButton]] = []
    for order in orders:
        when = format_datetime(
            rows[orders.index(order)]["created_at"],
            tenant.locale,
            tz=tenant.tz,
            format="dd.MM HH:mm",
        )
        text.append(
            tenant.text(
                "orders.my_line",
                id=order["id"],
                store=stores.get(order["store_id"], order["store_id"]),
                when=when,
                total=money(tenant, order["total"], order["currency"]),
                status=status_label(tenant, order["status"]),
            )
        )
        keyboard = status_keyboard(tenant, order, "customer")
        if keyboard is not None:
            buttons.extend(keyboard.inline_keyboard)
    await message.answer("\n".join(text), reply_markup=_keyboard(buttons) if buttons else None)


async def status_button(callback: CallbackQuery, tenant: Tenant, actor: Actor) -> None:
    """A status button (``os:<id>:<seen>:<target>:<role>``) pressed by a partner, admin or customer.

    The role in the data is only a claim: the service acts in it only when
    the actor holds it (a partner of the order's store, the order's
    customer, an admin: :func:`plugins.orders.service.acting_role`); the
    machine then checks the move.
    """
    parts = (callback.data or "").split(":")
    if len(parts) != 5 or _row_id(parts[1]) is None or parts[4] not in ROLE_CODES:
        await callback.answer()
        return
    order_id, seen, target, role = int(parts[1]), parts[2] or None, parts[3], ROLE_CODES[parts[4]]
    try:
        order = await change_status(
            tenant, order_id, target, actor=actor, as_role=role, expected=seen
        )
    except TransitionError as exc:
        if seen is not None and exc.current != seen:
            await callback.answer(
                tenant.text("orders.stale", id=order_id, status=status_label(tenant, exc.current)),
                show_alert=True,
            )
            await _refresh(callback, tenant, order_id, role)
        else:
            await callback.answer(_move_refused(tenant, order_id, exc), show_alert=True)
        return
    except ApiError:
        await callback.answer(tenant.text("orders.not_yours"), show_alert=True)
        return
    await callback.answer(
        tenant.text("orders.done", id=order_id, status=status_label(tenant, order["status"]))
    )
    if role == "customer" and callback.message is not None:
        # The customer gets a fresh status message from the event; retire these buttons.
        await callback.message.edit_reply_markup(reply_markup=None)


async def _refresh(callback: CallbackQuery, tenant: Tenant, order_id: int, role: str) -> None:
    """Redraw a stale message with the order's current state and buttons."""
    if callback.message is None:
        return
    order = await load_order(tenant, order_id)
    if role == "customer":
        await callback.message.edit_reply_markup(reply_markup=status_keyboard(tenant, order, role))
        return
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, order["store_id"])
    await callback.message.edit_text(
        order_card(tenant, order, store["name"]), reply_markup=status_keyboard(tenant, order, role)
    )
