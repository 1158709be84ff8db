"""How orders look in Telegram: money, status names, order cards and status buttons.

Money and status labels come from the core kit (``core.kit.format_money``,
``core.kit.status_label``), in the tenant's locale.
"""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from core import Tenant
from core.kit import format_money
from core.kit import status_label as kit_status_label

__all__ = [
    "ROLE_CODES",
    "action_label",
    "money",
    "order_card",
    "status_callback",
    "status_keyboard",
    "status_label",
]

ROLE_CODES = {"c": "customer", "p": "partner", "a": "admin"}
"""Role letters in status callback data (``os:<id>:<from>:<to>:<letter>``)."""

_CALLBACK_LIMIT = 64  # Bot API: InlineKeyboardButton.callback_data, 1-64 bytes


def money(tenant: Tenant, amount: int, currency: str) -> str:
    """Minor units as the tenant's locale writes them: ``15050, "RUB"`` is ``"150,50 ₽"`` in ``ru``."""
    return format_money(amount, currency, tenant.locale)


def _text_or(tenant: Tenant, key: str, fallback: str, **fields: Any) -> str:
    text = tenant.text(key, **fields)
    return fallback if text == key else text


def status_label(tenant: Tenant, state: str) -> str:
    """The localized name of ``state`` (``orders.status.<state>``), or the state itself."""
    return kit_status_label(tenant, "orders", state)


def action_label(tenant: Tenant, target: str, order_id: int) -> str:
    """Button text for moving an order to ``target`` (``orders.action.<target>``)."""
    return _text_or(
        tenant, f"orders.action.{target}", f"→ {status_label(tenant, target)}", id=order_id
    )


def status_callback(order_id: int, current: str, target: str, role_code: str) -> str:
    """Callback data of a status button; drops ``current`` (the stale check) if too long."""
    data = f"os:{order_id}:{current}:{target}:{role_code}"
    if len(data.encode()) > _CALLBACK_LIMIT:
        data = f"os:{order_id}::{target}:{role_code}"
    return data


def status_keyboard(
    tenant: Tenant, order: dict[str, Any], role: str
) -> InlineKeyboardMarkup | None:
    """Buttons for every move ``role`` may take from the order's state (from the tenant's machine)."""
    code = next(letter for letter, name in ROLE_CODES.items() if name == role)
    targets = tenant.statuses["orders"].allowed(order["status"], role, {"type": order["type"]})
    if not targets:
        return None
    rows = [
        [
            InlineKeyboardButton(
                text=action_label(tenant, target, order["id"]),
                callback_data=status_callback(order["id"], order["status"], target, code),
            )
        ]
        for target in targets
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def order_card(tenant: Tenant, order: dict[str, Any], store_name: str, *, new: bool = False) -> str:
    """The order as partners see it: header, customer, lines, totals and status."""
    currency = order["currency"]
    lines = "\n".join(
        tenant.text(
            "orders.cart_line",
            name=line["name"],
            quantity=line["quantity"],
            amount=money(tenant, line["line_total"], currency),
        )
        for line in order["items"]
    )
    address = order.get("address") or ""
    if not address and order.get("latitude") is not None:
        address = f"{order['latitude']:.5f}, {order['longitude']:.5f}"
    header = tenant.text("orders.partner_new" if new else "orders.partner_update", id=order["id"])
    details = tenant.text(
        "orders.details",
        store=store_name,
        type=tenant.text(f"orders.type.{order['type']}"),
        customer=order["customer_name"] or str(order["customer_id"]),
        phone=tenant.text("orders.detail_phone", phone=order["phone"])
        if order.get("phone")
        else "",
        address=tenant.text("orders.detail_address", address=address) if address else "",
        lines=lines,
        subtotal=money(tenant, order["subtotal"], currency),
        fee=tenant.text("orders.detail_fee", fee=money(tenant, order["delivery_fee"], currency))
        if order["delivery_fee"]
        else "",
        total=money(tenant, order["total"], currency),
        status=status_label(tenant, order["status"]),
    )
    return f"{header}\n{details}"
