"""The orders resource of the orders API: create, search, read, status changes and history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core.actors import Actor, Grant, resolve_actor
from core.errors import BadRequest, Forbidden
from core.http.auth import (
    ActorDep,
    TenantDep,
    require_api_key,
    require_api_key_or_webapp,
    require_webapp_user,
)
from core.http.idempotency import idempotent_response
from core.http.ratelimit import limit_writes
from plugins.orders import repository as repo
from plugins.orders.api.access import _named_store, _ordering, _staff, _stores_of
from plugins.orders.api.dto import HistoryEntry, OrderIn, OrderView, StatusChangeIn, _view
from plugins.orders.service import (
    OrderDraft,
    acting_role,
    change_status,
    create_order,
    load_order,
    order_views,
)

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["OrdersController"]


def _visible(order: dict[str, Any], actor: Actor) -> OrderView:
    """The order, if ``actor`` has a role on it (:func:`acting_role`); else 404 ``orders.not_found``."""
    acting_role(actor, order)
    return _view(OrderView, order)


def _scoped_key(actor: Actor) -> bool:
    """True for an API key that says who acts: any role but admin, or any scope."""
    return actor.via == "api_key" and any(g.role != "admin" or g.scope for g in actor.grants)


async def _body_actor(
    tenant: Tenant, actor: Actor, data: StatusChangeIn
) -> tuple[Actor, str | None]:
    """The actor and role of a status change, from the caller and (plain keys only) the body.

    Returns:
        ``(actor, as_role)``: the caller with no fixed role, or, for a plain
        key's ``{"role": "partner", "actor_id": ...}``, that Telegram user as
        resolved by the plugins' grants, acting as partner.

    Raises:
        Forbidden: ``orders.role_not_allowed``, a WebApp user naming a role or actor.
        BadRequest: ``orders.actor_from_key``, a scoped key naming them;
            ``orders.bad_role``; ``orders.actor_required``.
    """
    if data.role is None and data.actor_id is None:
        return actor, None
    if actor.via == "webapp":
        raise Forbidden(
            "orders.role_not_allowed",
            "WebApp users act as themselves, in their own role on the order",
        )
    if _scoped_key(actor):
        raise BadRequest(
            "orders.actor_from_key",
            "this API key says who acts (its role and scope); leave role and actor_id out",
        )
    role = data.role or "admin"
    if role not in ("admin", "partner"):
        raise BadRequest("orders.bad_role", "role must be admin or partner")
    if role == "admin":
        return Actor(
            via="api_key", grants=(Grant("admin"),), user_id=data.actor_id, key_name=actor.key_name
        ), "admin"
    if data.actor_id is None:
        raise BadRequest(
            "orders.actor_required",
            "acting as partner needs actor_id (the partner's Telegram id)",
        )
    partner = await resolve_actor(tenant, data.actor_id, via="api_key")
    return msgspec.structs.replace(partner, key_name=actor.key_name), "partner"


class OrdersController(Controller):
    """Orders: create (Idempotency-Key), list, read, change status, history."""

    path = "/orders"

    @post(
        "/",
        guards=[require_api_key_or_webapp, _ordering, limit_writes],
        summary="Create an order (Idempotency-Key supported)",
    )
    async def create(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        request: Request[Any, Any, Any],
        data: JSONBody[OrderIn],
    ) -> Response[OrderView]:
        """Create an order priced from current database prices.

        Returns:
            201 with the order (``Idempotent-Replayed: true`` on a replay);
            400 bad input (``request.invalid``, ``orders.<what>``) or unavailable
            items; 403 ``auth.role_required`` for a partner key; 409 the same
            key in flight; 422 the same key with another body.
        """
        if actor.via == "webapp":
            if data.customer_id is not None:
                raise BadRequest(
                    "orders.customer_id_not_allowed",
                    "customer_id is taken from X-Telegram-Init-Data; leave it out",
                )
            customer_id = actor.user_id
            user = actor.user
            name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
            source = "webapp"
        else:
            if data.customer_id is None:
                raise BadRequest(
                    "orders.customer_id_required",
                    "customer_id (Telegram user id) is required with an API key",
                )
            customer_id, name, source = data.customer_id, data.customer_name, "api"
        draft = OrderDraft(
            store_id=data.store_id,
            type=data.type,
            lines=data.items,
            address=data.address,
            latitude=data.latitude,
            longitude=data.longitude,
            phone=data.phone,
            comment=data.comment,
        )

        async def run() -> tuple[int, Any]:
            order = await create_order(
                tenant, customer_id=customer_id, customer_name=name, draft=draft, source=source
            )  # type: ignore[arg-type]
            return 201, _view(OrderView, order)

        return await idempotent_response(request, tenant, f"orders.create:{customer_id}", run)

    @get("/", guards=[require_api_key, _staff], summary="Orders by store and status, newest first")
    async def search(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        store: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        before: FromQuery[int | None] = None,
    ) -> list[OrderView]:
        """Orders filtered by ``?store=`` and ``?status=``; page with ``?before=<last id>``.

        A partner key lists its own stores' orders only.

        Raises:
            BadRequest: ``orders.unknown_status``.
            Forbidden: ``orders.store_out_of_scope``, a partner key naming another store.
        """
        states = tenant.statuses["orders"].states
        if status is not None and status not in states:
            raise BadRequest(
                "orders.unknown_status",
                f"unknown status {status!r}; known: {', '.join(states)}",
                known=states,
            )
        if store is not None:
            _named_store(actor, store)
            store_ids: list[str] | None = [store]
        else:
            stores = _stores_of(actor)
            store_ids = None if stores is None else sorted(stores)
        async with tenant.db.acquire() as conn:
            rows = await repo.search_orders(conn, store_ids, status, limit, before)
            return _view(list[OrderView], await order_views(conn, rows))

    @get("/my", guards=[require_webapp_user], summary="The WebApp user's orders")
    async def mine(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> list[OrderView]:
        """The caller's latest orders, newest first."""
        async with tenant.db.acquire() as conn:
            rows = await repo.customer_orders(conn, actor.user_id, limit)  # type: ignore[arg-type]
            return _view(list[OrderView], await order_views(conn, rows))

    @get("/{order_id:int}", guards=[require_api_key_or_webapp], summary="One order")
    async def read(self, tenant: TenantDep, actor: ActorDep, order_id: FromPath[int]) -> OrderView:
        """The order with its lines; 404 ``orders.not_found`` (also one the actor has no role
        on: another customer's, another store's for a partner)."""
        return _visible(await load_order(tenant, order_id), actor)

    @post(
        "/{order_id:int}/status",
        guards=[require_api_key_or_webapp, limit_writes],
        status_code=200,
        summary="Change status",
    )
    async def set_status(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        order_id: FromPath[int],
        data: JSONBody[StatusChangeIn],
    ) -> OrderView:
        """Apply a transition through the tenant's machine, in the actor's role on the order.

        Returns:
            200 with the order; 404 ``orders.not_found`` (also an order the
            actor has no role on); 403 ``orders.not_partner`` (a plain key's
            ``actor_id`` is not a partner of the store) or
            ``orders.role_not_allowed`` (a WebApp body naming a role); 400
            ``orders.actor_from_key`` (a scoped key's body naming one); 409
            ``status.not_allowed`` with ``current`` and ``allowed`` when the
            machine refuses or the order moved first.
        """
        acting, as_role = await _body_actor(tenant, actor, data)
        order = await change_status(
            tenant,
            order_id,
            data.status,
            actor=acting,
            as_role=as_role,
            reason=data.reason,
            expected=data.expected_status,
        )
        return _view(OrderView, order)

    @get(
        "/{order_id:int}/history",
        guards=[require_api_key_or_webapp],
        summary="Status history of an order",
    )
    async def history(
        self, tenant: TenantDep, actor: ActorDep, order_id: FromPath[int]
    ) -> list[HistoryEntry]:
        """The order's status changes, oldest first; 404 ``orders.not_found`` (as :meth:`read`)."""
        _visible(await load_order(tenant, order_id), actor)
        async with tenant.db.acquire() as conn:
            rows = await repo.order_history(conn, order_id)
        return [_view(HistoryEntry, dict(r)) for r in rows]
