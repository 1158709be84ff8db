"""Hook implementations of the orders plugin: the only module pluggy sees (wiring only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiogram import Router

from core import DomainEvent, JobSpec, StatusEntity, Tenant, hookimpl
from plugins.orders import api, bot, catalog, notify
from plugins.orders.config import OrdersSettings
from plugins.orders.jobs import JOBS
from plugins.orders.machine import ORDERS_ENTITY
from plugins.orders.texts import TEXTS


@hookimpl
def register_settings() -> type[OrdersSettings]:
    """``features.orders`` is validated by :class:`OrdersSettings`."""
    return OrdersSettings


@hookimpl
def register_status_machines() -> list[StatusEntity]:
    """The ``orders`` entity (``statuses.orders`` in YAML) with the unified default machine."""
    return [ORDERS_ENTITY]


@hookimpl
def register_migrations() -> Path:
    """``plugins/orders/migrations``: stores, catalog, orders, history."""
    return Path(__file__).parent / "migrations"


@hookimpl
def register_texts() -> dict[str, dict[str, str]]:
    """``orders.*`` texts in English and Russian."""
    return TEXTS


@hookimpl
def register_routers(tenant: Tenant) -> Router:
    """A fresh orders Router for this tenant."""
    return bot.build_router(tenant)


@hookimpl
def register_commands(tenant: Tenant) -> list[tuple[str, str]]:
    """``/menu``, ``/cart`` and ``/myorders`` in the tenant's locale."""
    return [(name, tenant.text(f"orders.command.{name}")) for name in ("menu", "cart", "myorders")]


@hookimpl
def register_route_handlers() -> list[Any]:
    """The catalog and orders controllers."""
    return [api.CatalogController, api.OrdersController]


@hookimpl
def register_jobs() -> Sequence[JobSpec]:
    """``orders.expire``, every minute."""
    return JOBS


@hookimpl
def on_tenant_started(tenant: Tenant) -> Any:
    """Seed stores, categories and items from the YAML (idempotent; see :mod:`plugins.orders.catalog`)."""
    return catalog.seed(tenant)


@hookimpl
def on_event(tenant: Tenant, event: DomainEvent) -> Any:
    """Tell partners and customers about ``order.*`` events in Telegram."""
    if event.name.startswith("order."):
        return notify.handle_event(tenant, event)
    return None
