"""Order status in the bot: ``/myorders`` and the status buttons of customers, partners and admins (``os:...``).

A partner or admin pressing a move into one of ``cancelled_states`` (reject,
cancel) is asked why first (:class:`StaffReason`): the next message is the
reason, kept in the order's history and shown to the customer; ``/skip``
moves without one, ``/cancel`` leaves the order as it is.
"""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from core import Actor, Tenant, TransitionError
from core.errors import ApiError
from core.kit import format_datetime
from plugins.orders import repository as repo
from plugins.orders.bot.keyboards import _keyboard, _row_id
from plugins.orders.service import acting_role, change_status, load_order, order_views, settings_of
from plugins.orders.views import ROLE_CODES, money, order_card, status_keyboard, status_label

__all__ = [
    "MY_ORDERS_SHOWN",
    "REASON_CHARS",
    "StaffReason",
    "my_orders",
    "reason_cancel",
    "reason_skip",
    "reason_text",
    "status_button",
]

MY_ORDERS_SHOWN = 5

REASON_CHARS = 500
"""Longest reason kept (the service's limit); a longer message is cut."""


class StaffReason(StatesGroup):
    """A partner's or admin's move into a cancelled state, waiting for its reason.

    The state's data holds ``reason_for``: ``{order, seen, target, role}`` of the pressed button.
    """

    reason = State()


def _stale(seen: str | None, exc: TransitionError) -> bool:
    """True when the move was refused because the order left the state the button showed."""
    return seen is not None and exc.current != seen


def _refusal(tenant: Tenant, order_id: int, seen: str | None, exc: TransitionError) -> str:
    """What the actor is told of a refused move: ``orders.stale`` when the order moved
    since ``seen``, else ``orders.refused`` with the states' labels."""
    if _stale(seen, exc):
        return tenant.text("orders.stale", id=order_id, status=status_label(tenant, exc.current))
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


async def status_button(
    callback: CallbackQuery, tenant: Tenant, actor: Actor, state: FSMContext | None = None
) -> None:
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
    if state is not None and await _asks_reason(tenant, actor, order_id, seen, target, role):
        await state.set_state(StaffReason.reason)
        await state.update_data(
            reason_for={"order": order_id, "seen": seen, "target": target, "role": role}
        )
        await callback.answer()
        if callback.message is not None:
            await callback.message.answer(
                tenant.text("orders.ask_reason", id=order_id, status=status_label(tenant, target))
            )
        return
    try:
        order = await change_status(
            tenant, order_id, target, actor=actor, as_role=role, expected=seen
        )
    except TransitionError as exc:
        await callback.answer(_refusal(tenant, order_id, seen, exc), show_alert=True)
        if _stale(seen, exc):
            await _refresh(callback, tenant, order_id, role)
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


async def _asks_reason(
    tenant: Tenant, actor: Actor, order_id: int, seen: str | None, target: str, role: str
) -> bool:
    """True when the button is a staff move into a cancelled state that would be taken now.

    A move the service would refuse (stale button, not the actor's order, not
    allowed by the machine) is not asked about: it goes to the service at
    once and is answered as any refused button.
    """
    if role == "customer" or target not in settings_of(tenant).cancelled_states:
        return False
    try:
        order = await load_order(tenant, order_id)
        acting_role(actor, order, role)
    except ApiError:
        return False
    if seen is not None and order["status"] != seen:
        return False
    allowed = tenant.statuses["orders"].allowed(order["status"], role, {"type": order["type"]})
    return target in allowed


async def reason_text(message: Message, tenant: Tenant, actor: Actor, state: FSMContext) -> None:
    """The reason for the move waiting in :class:`StaffReason` (at most :data:`REASON_CHARS`)."""
    await _move_with_reason(message, tenant, actor, state, (message.text or "").strip())


async def reason_skip(message: Message, tenant: Tenant, actor: Actor, state: FSMContext) -> None:
    """``/skip`` while a reason is asked for: take the move without one."""
    await _move_with_reason(message, tenant, actor, state, "")


async def reason_cancel(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """``/cancel`` while a reason is asked for: forget the move; the order stays as it is."""
    pending = (await state.get_data()).get("reason_for") or {}
    await state.clear()
    if "order" in pending:
        order = await load_order(tenant, pending["order"])
        await message.answer(
            tenant.text(
                "orders.reason_dropped",
                id=pending["order"],
                status=status_label(tenant, order["status"]),
            )
        )


async def _move_with_reason(
    message: Message, tenant: Tenant, actor: Actor, state: FSMContext, reason: str
) -> None:
    pending = (await state.get_data()).get("reason_for") or {}
    await state.clear()
    if "order" not in pending:
        return
    order_id = pending["order"]
    try:
        order = await change_status(
            tenant,
            order_id,
            pending["target"],
            actor=actor,
            as_role=pending["role"],
            reason=reason[:REASON_CHARS],
            expected=pending["seen"],
        )
    except TransitionError as exc:
        await message.answer(_refusal(tenant, order_id, pending["seen"], exc))
        return
    except ApiError:
        await message.answer(tenant.text("orders.not_yours"))
        return
    await message.answer(
        tenant.text("orders.done", id=order_id, status=status_label(tenant, order["status"]))
    )
