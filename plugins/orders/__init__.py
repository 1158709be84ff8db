"""The orders plugin: stores, catalog, cart and checkout, a YAML status machine, partner notifications.

Enable it with ``features.orders`` in a tenant file; see ``docs/plugins/orders.md``.
"""

from plugins.orders.config import CategorySeed, ItemSeed, OrdersSettings, StoreSettings
from plugins.orders.errors import InvalidOrder, OrderError, OrderForbidden, OrderNotFound
from plugins.orders.machine import DEFAULT_MACHINE, ORDERS_ENTITY
from plugins.orders.service import (
    OrderDraft,
    OrderLine,
    change_status,
    create_order,
    expire_pending,
)

__all__ = [
    "DEFAULT_MACHINE",
    "ORDERS_ENTITY",
    "CategorySeed",
    "InvalidOrder",
    "ItemSeed",
    "OrderDraft",
    "OrderError",
    "OrderForbidden",
    "OrderLine",
    "OrderNotFound",
    "OrdersSettings",
    "StoreSettings",
    "change_status",
    "create_order",
    "expire_pending",
]
