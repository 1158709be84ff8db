"""The orders pages, under ``/web/{tenant_id}/orders``.

* ``GET /partner``: the stores the signed-in partner (or admin) manages; with
  one store, straight to its panel.
* ``GET /partner/{store_id}``: a store's live order panel: newest first, a
  toast and a badge for new orders, the moves the tenant's machine allows the
  partner. A partner of another store gets the "not allowed" page; its
  JSON routes refuse the same way (403 ``orders.store_out_of_scope``, 404
  ``orders.not_found`` for another store's order), so hiding buttons is never
  the only check.
* ``GET /app``: the customers' WebApp (stores, catalog, cart, pickup or
  delivery, checkout; my orders with their status). It calls the plugin's API
  (``/api/tenants/{id}/orders``) with the WebApp's init data.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect

from core.actors import Actor
from core.errors import Forbidden
from core.http.auth import ActorDep, TenantDep
from core.http.ratelimit import limit_writes
from core.runtime.tenant import Tenant
from core.web.auth import forbidden_page, page_actor, require_staff, web_base
from core.web.pages import js_texts, machine_for, web_text
from core.web.render import page
from plugins.orders import repository as repo
from plugins.orders.api import OrderView
from plugins.orders.service import change_status, order_views, settings_of
from plugins.orders.texts import TEXTS
from plugins.orders.web.texts import WEB_TEXTS

__all__ = ["OrderPages", "PanelStatusChange"]

_PANEL_LIMIT = 50
"""Orders a panel lists (the newest)."""


class PanelStatusChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /orders/{id}/status`` from a panel.

    Attributes:
        status: the target state.
        reason: kept in the history and sent to the customer (500 characters).
        expected_status: the state the panel showed; 409 when the order moved since.
    """

    status: Annotated[str, msgspec.Meta(max_length=64)]
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    expected_status: Annotated[str, msgspec.Meta(max_length=64)] | None = None


def _managed(tenant: Tenant, actor: Actor) -> list[Any]:
    """The stores ``actor`` manages: every store for an admin, a partner's scope otherwise."""
    stores = settings_of(tenant).stores
    if actor.has_role("admin"):
        return list(stores)
    return [s for s in stores if actor.allows("partner", "store", s.id)]


def _store_in_scope(tenant: Tenant, actor: Actor, store_id: str) -> Any:
    """The store ``store_id`` if ``actor`` manages it.

    Raises:
        Forbidden: 403 ``orders.store_out_of_scope`` (also for an unknown store).
    """
    for store in _managed(tenant, actor):
        if store.id == store_id:
            return store
    raise Forbidden("orders.store_out_of_scope", f"you do not manage the store {store_id!r}")


def _texts(tenant: Tenant) -> dict[str, str]:
    keys = [
        *WEB_TEXTS["en"],
        *(
            k
            for k in TEXTS["en"]
            if k.startswith(("orders.error.", "orders.type.", "orders.reason."))
        ),
        *(f"orders.status.{s}" for s in tenant.statuses["orders"].states),
        *(f"orders.action.{s}" for s in tenant.statuses["orders"].states),
        "web.state_connecting",
        "web.state_live",
        "web.state_offline",
        "web.state_polling",
        "web.error_generic",
        "web.error_network",
    ]
    return js_texts(tenant, keys)


class OrderPages(Controller):
    """The partners' panels, their JSON routes, and the customers' WebApp."""

    path = "/"

    @get("/partner")
    async def stores_page(self, tenant: TenantDep, request: Request[Any, Any, Any]) -> Any:
        """The stores the signed-in partner manages; one store opens its panel directly."""
        actor = await page_actor(request, tenant, "admin", "partner")
        if not isinstance(actor, Actor):
            return actor
        stores = _managed(tenant, actor)
        if len(stores) == 1:
            return Redirect(f"{web_base(tenant)}/orders/partner/{stores[0].id}")
        return page(
            tenant,
            "orders/stores.html",
            title=web_text(tenant, "orders.web.stores_title"),
            stores=stores,
        )

    @get("/partner/{store_id:str}")
    async def panel_page(
        self, tenant: TenantDep, request: Request[Any, Any, Any], store_id: FromPath[str]
    ) -> Any:
        """One store's live order panel; the "not allowed" page (403) for another store."""
        actor = await page_actor(request, tenant, "admin", "partner")
        if not isinstance(actor, Actor):
            return actor
        store = next((s for s in _managed(tenant, actor) if s.id == store_id), None)
        if store is None:
            tenant.log.info("web_store_refused", store=store_id[:40])
            return forbidden_page(tenant)
        machine = tenant.statuses["orders"]
        base = web_base(tenant)
        role = "admin" if actor.has_role("admin") else "partner"
        data = {
            "texts": _texts(tenant),
            "store": {"id": store.id, "name": store.name, "currency": store.currency},
            "timezone": tenant.config.timezone,
            "machine": machine_for(machine, role),
            "initial": machine.initial,
            "rejected": "rejected",
            "live": tenant.enabled("realtime"),
            "urls": {
                "orders": f"{base}/orders/partner/{store.id}/orders",
                "status": f"{base}/orders/orders",
                "ticket": f"{base}/realtime/ticket",
                "socket": f"/api/tenants/{tenant.id}/realtime/ws",
            },
            "signin_url": f"{base}/signin",
        }
        return page(
            tenant,
            "orders/partner.html",
            title=f"{web_text(tenant, 'orders.web.partner_title')} · {store.name}",
            data=data,
        )

    @get("/partner/{store_id:str}/orders", guards=[require_staff])
    async def panel_orders(
        self, tenant: TenantDep, actor: ActorDep, store_id: FromPath[str]
    ) -> list[OrderView]:
        """The store's newest orders (403 ``orders.store_out_of_scope`` for another store)."""
        _store_in_scope(tenant, actor, store_id)
        async with tenant.db.acquire() as conn:
            rows = await repo.search_orders(conn, [store_id], None, _PANEL_LIMIT, None)
            views = await order_views(conn, rows)
        return msgspec.convert(views, list[OrderView], strict=False)

    @post("/orders/{order_id:int}/status", guards=[require_staff, limit_writes], status_code=200)
    async def panel_status(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        order_id: FromPath[int],
        data: JSONBody[PanelStatusChange],
    ) -> OrderView:
        """Move an order as the store's partner (or admin).

        Raises:
            NotFound: ``orders.not_found``, no such order or another store's.
            TransitionError: 409 ``status.not_allowed`` when the machine refuses or it moved.
        """
        as_role = "admin" if actor.has_role("admin") else "partner"
        order = await change_status(
            tenant,
            order_id,
            data.status,
            actor=actor,
            as_role=as_role,
            reason=data.reason,
            expected=data.expected_status,
        )
        return msgspec.convert(order, OrderView, strict=False)

    @get("/app")
    async def app_page(self, tenant: TenantDep) -> Any:
        """The customers' WebApp: stores, catalog, cart, checkout, my orders."""
        machine = tenant.statuses["orders"]
        settings = settings_of(tenant)
        api = f"/api/tenants/{tenant.id}/orders"
        data = {
            "texts": _texts(tenant),
            "timezone": tenant.config.timezone,
            "machine": machine_for(machine, "customer"),
            "final": [s for s in machine.states if machine.is_final(s)],
            "require_phone": settings.require_phone,
            "max_quantity": settings.max_quantity,
            "urls": {
                "catalog": f"{api}/catalog",
                "orders": f"{api}/orders",
                "mine": f"{api}/orders/my",
            },
        }
        return page(
            tenant, "orders/app.html", title=web_text(tenant, "orders.web.app_title"), data=data
        )
