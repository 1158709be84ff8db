"""Telegram side effects of order events: partners get cards with buttons, customers get updates.

Runs from ``on_event`` after the change committed. Sends go through the core
kit (``core.kit.send_message``/``edit_message_text``): a partner or customer
who blocked the bot is marked blocked, a 429 is waited out, and a failed send
is logged and does not stop the others.
"""

from __future__ import annotations

from typing import Any

from core import DomainEvent, Tenant
from core.kit import edit_message_text, send_message
from plugins.orders import repository as repo
from plugins.orders.service import load_order
from plugins.orders.views import money, order_card, status_keyboard, status_label

__all__ = ["handle_event"]


async def handle_event(tenant: Tenant, event: DomainEvent) -> None:
    """Dispatch ``orders.created`` and ``orders.status_changed`` to the notifiers."""
    if event.name == "orders.created":
        await _order_created(tenant, event.payload)
    elif event.name == "orders.status_changed":
        await _status_changed(tenant, event.payload)


async def _order_created(tenant: Tenant, payload: dict[str, Any]) -> None:
    order = await load_order(tenant, payload["order_id"])
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, order["store_id"])
    text = order_card(tenant, order, store["name"], new=True)
    keyboard = status_keyboard(tenant, order, "partner")
    for partner_id in store["partner_ids"]:
        message = await send_message(tenant, partner_id, text, reply_markup=keyboard)
        if message is None:
            continue
        async with tenant.db.acquire() as conn:
            await repo.save_partner_message(conn, order["id"], partner_id, message.message_id)
    if payload.get("source") != "bot":  # the bot's checkout already answered its customer
        await _tell_customer(
            tenant,
            order["customer_id"],
            tenant.text(
                "orders.received",
                id=order["id"],
                total=money(tenant, order["total"], order["currency"]),
            ),
        )


async def _status_changed(tenant: Tenant, payload: dict[str, Any]) -> None:
    order = await load_order(tenant, payload["order_id"])
    async with tenant.db.acquire() as conn:
        messages = await repo.partner_messages(conn, order["id"])
    text = order_card(tenant, order, payload["store_name"])
    keyboard = status_keyboard(tenant, order, "partner")
    for message in messages:
        await edit_message_text(
            tenant, message["chat_id"], message["message_id"], text, reply_markup=keyboard
        )
    lines = [
        tenant.text(
            "orders.customer_status",
            id=order["id"],
            store=payload["store_name"],
            status=status_label(tenant, order["status"]),
        )
    ]
    reason = payload.get("reason")
    if reason and reason != "created":
        if payload.get("role") == "system":
            # The system's reasons are words of ours (the expiry job's "expired"):
            # say them in the tenant's language; people's reasons are theirs.
            key = f"orders.reason.{reason}"
            reason = tenant.text(key) if tenant.text(key) != key else reason
        lines.append(tenant.text("orders.customer_reason", reason=reason))
    await _tell_customer(
        tenant, order["customer_id"], "\n".join(lines), status_keyboard(tenant, order, "customer")
    )


async def _tell_customer(tenant: Tenant, customer_id: int, text: str, keyboard: Any = None) -> None:
    await send_message(tenant, customer_id, text, reply_markup=keyboard)
