"""Reads every order service shares: the tenant's settings, JSON-ready order views, event payloads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

import asyncpg

from core import Tenant
from core.errors import NotFound
from plugins.orders import repository as repo
from plugins.orders.config import OrdersSettings

__all__ = ["load_order", "order_views", "settings_of"]


def settings_of(tenant: Tenant) -> OrdersSettings:
    """The tenant's ``features.orders`` settings."""
    return tenant.settings_for("orders")


async def order_views(conn: repo.Conn, orders: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """JSON-ready order dicts with their lines (money in minor units, times ISO 8601 UTC)."""
    lines = await repo.order_lines(conn, [o["id"] for o in orders])
    by_order: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        by_order.setdefault(line["order_id"], []).append(
            {
                "item_id": line["item_id"],
                "name": line["name"],
                "unit_price": line["unit_price"],
                "quantity": line["quantity"],
                "line_total": line["line_total"],
            }
        )
    return [_order_view(order, by_order.get(order["id"], [])) for order in orders]


def _order_view(order: Mapping[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """One JSON-ready order dict with ``lines`` as its ``items``."""
    view = dict(order)
    view["created_at"] = order["created_at"].astimezone(UTC).isoformat()
    view["updated_at"] = order["updated_at"].astimezone(UTC).isoformat()
    view["items"] = lines
    return view


async def load_order(tenant: Tenant, order_id: int) -> dict[str, Any]:
    """One order view.

    Raises:
        NotFound: ``orders.not_found``, no such order.
    """
    async with tenant.db.acquire() as conn:
        order = await repo.get_order(conn, order_id)
        if order is None:
            raise NotFound("orders.not_found", f"no order {order_id}")
        [view] = await order_views(conn, [order])
    return view


def _event_payload(
    view: dict[str, Any],
    store_name: str,
    previous: str | None,
    reason: str,
    role: str,
    source: str | None,
) -> dict[str, Any]:
    """What a partner dashboard shows about an order event (money in minor units)."""
    return {
        "order_id": view["id"],
        "store_id": view["store_id"],
        "store_name": store_name,
        "customer_id": view["customer_id"],
        "customer_name": view["customer_name"],
        "type": view["type"],
        "total": view["total"],
        "currency": view["currency"],
        "items": [
            {k: line[k] for k in ("item_id", "name", "quantity", "unit_price")}
            for line in view["items"]
        ],
        "status": view["status"],
        "previous_status": previous,
        "reason": reason,
        "role": role,
        "source": source,
    }
