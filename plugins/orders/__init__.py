"""The orders plugin: stores, catalog, cart and checkout, a YAML status machine, partner notifications.

Enable it with ``features.orders`` in a tenant file; see ``docs/plugins/orders.md``.
Refusals are the core's errors (``core.errors``) with codes ``orders.<what>``.
The service names are imported on first use (PEP 562), so the config phase
(``hookimpls`` loading the settings) does not import the service, the kit,
aiogram or Litestar.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from plugins.orders.config import CategorySeed, ItemSeed, OrdersSettings, StoreSettings
from plugins.orders.machine import DEFAULT_MACHINE, ORDERS_ENTITY

if TYPE_CHECKING:
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
    "ItemSeed",
    "OrderDraft",
    "OrderLine",
    "OrdersSettings",
    "StoreSettings",
    "change_status",
    "create_order",
    "expire_pending",
]

_LAZY_EXPORTS = dict.fromkeys(
    ("OrderDraft", "OrderLine", "change_status", "create_order", "expire_pending"),
    "plugins.orders.service",
)


def __getattr__(name: str) -> Any:
    """Import a service name of :data:`__all__` on first access.

    Raises:
        AttributeError: ``name`` is not a public name of the package.
    """
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugins.orders' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
