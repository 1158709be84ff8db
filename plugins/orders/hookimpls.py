"""Hook implementations of the orders plugin: the only module pluggy sees (wiring only)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import Grant, Role, hookimpl
from plugins.orders.config import OrdersSettings
from plugins.orders.machine import ORDERS_ENTITY
from plugins.orders.texts import TEXTS

if TYPE_CHECKING:
    # The bot, API, job, catalog and notification modules (aiogram, Litestar)
    # are imported inside the hooks that need them, so the config-phase
    # hooks, and with them ``tenantry check``, load only config modules.
    from aiogram import Router

    from core import DomainEvent, JobSpec, StatusEntity, Tenant
    from core.web.pages import WebPages


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
    """``orders.*`` texts in English and Russian, the segment titles included."""
    from plugins.orders import segments
    from plugins.orders.web.texts import WEB_TEXTS

    return {
        locale: {**TEXTS[locale], **segments.TEXTS.get(locale, {}), **WEB_TEXTS.get(locale, {})}
        for locale in TEXTS
    }


@hookimpl
def register_segments(tenant: Tenant) -> list[Any]:
    """Audiences for campaigns: ``orders.store_customers`` (store X) and ``orders.recent`` (N days)."""
    from plugins.orders.segments import segments

    return segments(tenant)


@hookimpl
def register_roles() -> list[Role]:
    """``customer``, ``partner`` (scope kind ``store``) and ``admin``."""
    return [
        Role("customer", "orders for themselves, sees and cancels own orders"),
        Role("partner", "a store's staff: its orders and catalog", scopes=("store",)),
        Role("admin", "every store's orders and catalog"),
    ]


_PARTNER_GRANTS: weakref.WeakKeyDictionary[Tenant, dict[int, tuple[Grant, ...]]] = (
    weakref.WeakKeyDictionary()
)


@hookimpl
def grant_roles(tenant: Tenant, user_id: int) -> tuple[Grant, ...]:
    """``partner`` scoped to the stores whose ``partners`` list the user (no query).

    The stores come from ``features.orders.stores`` (the YAML is their source
    of truth, and a changed file starts a new Tenant), so the map is built
    once per Tenant and kept while it lives.
    """
    grants = _PARTNER_GRANTS.get(tenant)
    if grants is None:
        stores: dict[int, set[str]] = {}
        for store in tenant.settings_for("orders").stores:
            for partner in store.partners:
                stores.setdefault(partner, set()).add(store.id)
        grants = {
            user: (Grant("partner", {"store": frozenset(ids)}),) for user, ids in stores.items()
        }
        _PARTNER_GRANTS[tenant] = grants
    return grants.get(user_id, ())


@hookimpl
def register_routers(tenant: Tenant) -> Router:
    """A fresh orders Router for this tenant."""
    from plugins.orders import bot

    return bot.build_router(tenant)


@hookimpl
def register_commands(tenant: Tenant) -> list[tuple[Any, ...]]:
    """``/menu``, ``/cart``, ``/myorders``; ``/storepanel`` for partners and admins."""
    public = [
        (name, tenant.text(f"orders.command.{name}")) for name in ("menu", "cart", "myorders")
    ]
    return [*public, ("storepanel", tenant.text("orders.command.storepanel"), ("partner", "admin"))]


@hookimpl
def register_route_handlers() -> list[Any]:
    """The catalog and orders controllers."""
    from plugins.orders import api

    return [api.CatalogController, api.OrdersController]


@hookimpl
def register_web_pages() -> WebPages:
    """The partners' live panel (``/web/{id}/orders/partner``) and the customers' WebApp (``/app``)."""
    from plugins.orders.web import web_pages

    return web_pages()


@hookimpl
def register_jobs() -> Sequence[JobSpec]:
    """``orders.expire``, every minute."""
    from plugins.orders.jobs import JOBS

    return JOBS


@hookimpl
def on_tenant_started(tenant: Tenant) -> Any:
    """Seed stores, categories and items from the YAML (idempotent; see :mod:`plugins.orders.catalog`)."""
    from plugins.orders import catalog

    return catalog.seed(tenant)


@hookimpl
def on_event(tenant: Tenant, event: DomainEvent) -> Any:
    """Tell partners and customers about ``orders.*`` events in Telegram."""
    if event.name.startswith("orders."):
        from plugins.orders import notify

        return notify.handle_event(tenant, event)
    return None
