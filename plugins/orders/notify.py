"""Telegram side effects of order events: partners get cards with buttons, customers get updates.

Runs from ``on_event`` after the change committed. A failed send (a partner
who blocked the bot) is logged and does not stop the others.
"""

from __future__ import annotations

from typing import Any

from aiogram.exceptions import TelegramAPIError

from core import DomainEvent, Tenant
from plugins.orders import repository as repo
from plugins.orders.service import load_order
from plugins.orders.views import money, order_card, status_keyboard, status_label

__all__ = ["handle_event"]


async def handle_event(tenant: Tenant, event: DomainEvent) -> None:
    """Dispatch ``order.created`` and ``order.status_changed`` to the notifiers."""
    if event.name == "order.created":
        await _order_created(tenant, event.payload)
    elif event.name == "order.status_changed":
        await _status_changed(tenant, event.payload)


async def _order_created(tenant: Tenant, payload: dict[str, Any]) -> None:
    order = await load_order(tenant, payload["order_id"])
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, order["store_id"])
    text = order_card(tenant, order, store["name"], new=True)
    keyboard = status_keyboard(tenant, order, "partner")
    for partner_id in store["partner_ids"]:
        try:
            message = await tenant.bot.send_message(partner_id, text, reply_markup=keyboard)
        except TelegramAPIError as exc:
            tenant.log.warning(
                "partner_notify_failed", order_id=order["id"], partner=partner_id, error=str(exc)
            )
            continue
        async with tenant.db.acquire() as conn:
            await repo.save_partner_message(conn, order["id"], partner_id, message.message_id)
    if payload.get("source") != "bot":  # the bot's checkout already answered its customer
        await _tell_customer(
            tenant,
            order["customer_id"],
            tenant.text(
                "orders.received", id=order["id"], total=money(order["total"], order["currency"])
            ),
        )


async def _status_changed(tenant: Tenant, payload: dict[str, Any]) -> None:
    order = await load_order(tenant, payload["order_id"])
    async with tenant.db.acquire() as conn:
        messages = await repo.partner_messages(conn, order["id"])
    text = order_card(tenant, order, payload["store_name"])
    keyboard = status_keyboard(tenant, order, "partner")
    for message in messages:
        try:
            await tenant.bot.edit_message_text(
                text=text,
                chat_id=message["chat_id"],
                message_id=message["message_id"],
                reply_markup=keyboard,
            )
        except TelegramAPIError as exc:
            tenant.log.warning(
                "partner_edit_failed",
                order_id=order["id"],
                partner=message["chat_id"],
                error=str(exc),
            )
    lines = [
        tenant.text(
            "orders.customer_status",
            id=order["id"],
            store=payload["store_name"],
            status=status_label(tenant, order["status"]),
        )
    ]
    if payload.get("reason") and payload["reason"] != "created":
        lines.append(tenant.text("orders.customer_reason", reason=payload["reason"]))
    await _tell_customer(
        tenant, order["customer_id"], "\n".join(lines), status_keyboard(tenant, order, "customer")
    )


async def _tell_customer(tenant: Tenant, customer_id: int, text: str, keyboard: Any = None) -> None:
    try:
        await tenant.bot.send_message(customer_id, text, reply_markup=keyboard)
    except TelegramAPIError as exc:
        tenant.log.warning("customer_notify_failed", customer=customer_id, error=str(exc))
