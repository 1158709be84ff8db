"""HTTP API of the orders plugin, mounted by the core at ``/api/tenants/{tenant_id}/orders``.

* ``X-API-Key`` acting as ``admin`` (a plain key): catalog CRUD, orders by
  store and status, status changes (optionally as a store partner named in
  the body), history.
* ``X-API-Key`` acting as ``partner`` with a ``store`` scope (``{key: ...,
  role: partner, scope: {store: bakery}}``): the same, limited to the stores
  in its scope; orders are not created with it. Another store's order,
  category or item is 404 ``orders.not_found``, as if it did not exist;
  naming another store (``?store=``, a body's ``store_id``) is 403
  ``orders.store_out_of_scope``. The key says who acts, so a body's
  ``role``/``actor_id`` is 400 ``orders.actor_from_key``.
* ``X-Telegram-Init-Data`` (identity from the signed init data only):
  catalog, create, my orders; status changes and reads in the user's role on
  that order: ``admin`` (``bot.admins``), ``partner`` of its store, or its
  ``customer`` (:func:`plugins.orders.service.acting_role`).

Bodies are ``data: <Struct>`` parameters, so Litestar decodes, validates and
documents them; answers are the Structs below. Refusals are the runtime's
problem bodies (``core.errors``) with a code ``orders.<what>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core.actors import Actor, Grant, resolve_actor
from core.errors import BadRequest, Forbidden, NotFound
from core.http.auth import (
    ActorDep,
    TenantDep,
    require_api_key,
    require_api_key_or_webapp,
    require_role,
    require_webapp_user,
)
from core.http.idempotency import idempotent_response
from core.http.ratelimit import limit_writes
from plugins.orders import catalog
from plugins.orders import repository as repo
from plugins.orders.service import (
    OrderDraft,
    OrderLine,
    acting_role,
    change_status,
    create_order,
    load_order,
    order_views,
)

if TYPE_CHECKING:
    from core import Tenant

__all__ = [
    "CatalogCategory",
    "CatalogController",
    "CatalogStore",
    "CategoryIn",
    "CategoryPatch",
    "CategoryView",
    "HistoryEntry",
    "ItemIn",
    "ItemPatch",
    "ItemView",
    "OrderIn",
    "OrderLineView",
    "OrderView",
    "OrdersController",
    "StatusChangeIn",
]

_SLUG = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_CATEGORY_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
"""categories.name is 1-100 characters (CHECK in migrations/0001_init.sql)."""
_POSITION = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
"""categories.position is a PostgreSQL integer (int4)."""
_MONEY = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


# ---------------------------------------------------------------- DTOs


class CategoryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new category: ``id`` slug, its ``store_id``, ``name``, ``position`` (sort order)."""

    id: _SLUG
    store_id: str
    name: _CATEGORY_NAME
    position: _POSITION = 0


class CategoryPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to a category; omitted fields stay."""

    name: _CATEGORY_NAME | None = None
    position: _POSITION | None = None


class ItemIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new item; ``price`` in minor units; the store is the category's."""

    category_id: str
    sku: _SLUG
    name: _NAME
    price: _MONEY
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    available: bool = True


class ItemPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to an item; omitted fields stay. ``price`` in minor units."""

    name: _NAME | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    price: _MONEY | None = None
    available: bool | None = None
    category_id: str | None = None


class OrderIn(msgspec.Struct, frozen=True):
    """A new order. Unknown fields (a client's ``price`` or ``total``) are ignored.

    Attributes:
        store_id: the store.
        type: ``pickup`` or ``delivery``.
        items: ``[{item_id, quantity}]``.
        address / latitude / longitude: delivery destination.
        phone: contact phone.
        comment: note for the store.
        customer_id / customer_name: API-key callers only (orders taken by
            staff); a WebApp caller is always the init data's user.
    """

    store_id: str
    type: str
    items: list[OrderLine]
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    phone: str = ""
    comment: str = ""
    customer_id: int | None = None
    customer_name: str = ""


class StatusChangeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A requested status change.

    Attributes:
        status: the target state.
        reason: kept in the history and sent to the customer.
        expected_status: refuse (409) unless the order is still in this state.
        role: plain (unscoped admin) API keys only: act as ``partner`` (with
            ``actor_id``, a partner of the order's store) instead of ``admin``.
            A scoped key is 400 ``orders.actor_from_key``, a WebApp user 403
            ``orders.role_not_allowed``: they say who acts themselves.
        actor_id: Telegram id recorded as who acted (plain API keys only).
    """

    status: str
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    expected_status: str | None = None
    role: str | None = None
    actor_id: int | None = None


class ItemView(msgspec.Struct):
    """A catalog item; ``price`` in minor units of its store's currency."""

    id: int
    store_id: str
    category_id: str
    sku: str
    name: str
    description: str
    price: int
    available: bool
    updated_at: datetime


class CategoryView(msgspec.Struct):
    """A category of a store; ``position`` sorts ascending."""

    id: str
    store_id: str
    name: str
    position: int


class CatalogCategory(msgspec.Struct):
    """A category in the catalog, with its orderable items."""

    id: str
    name: str
    position: int
    items: list[ItemView]


class CatalogStore(msgspec.Struct):
    """A store in the catalog; money in minor units of ``currency`` (ISO 4217)."""

    id: str
    name: str
    pickup: bool
    delivery: bool
    delivery_fee: int
    min_order: int
    currency: str
    address: str
    categories: list[CatalogCategory]


class OrderLineView(msgspec.Struct):
    """One line of an order, priced when it was created (minor units)."""

    item_id: int
    name: str
    unit_price: int
    quantity: int
    line_total: int


class OrderView(msgspec.Struct):
    """An order as the API returns it.

    Attributes:
        id / store_id / customer_id / customer_name / type / status: as stored.
        address / latitude / longitude: delivery destination (degrees).
        phone: E.164, or empty.
        comment: the customer's note.
        subtotal / delivery_fee / total: minor units of ``currency``.
        created_at / updated_at: UTC.
        items: the lines.
    """

    id: int
    store_id: str
    customer_id: int
    customer_name: str
    type: str
    status: str
    address: str
    latitude: float | None
    longitude: float | None
    phone: str
    comment: str
    subtotal: int
    delivery_fee: int
    total: int
    currency: str
    created_at: datetime
    updated_at: datetime
    items: list[OrderLineView]


class HistoryEntry(msgspec.Struct):
    """One status change.

    ``actor_id`` is None for API keys and the expiry job; ``key_name`` is the
    ``name`` of the API key that made it (``api.keys[].name``), None otherwise.
    """

    from_status: str | None
    to_status: str
    actor_id: int | None
    role: str
    reason: str
    at: datetime
    key_name: str | None = None


def _view(kind: type[Any], value: Any) -> Any:
    # The services build JSON-ready dicts (timestamps as ISO strings); lax
    # conversion parses those back into the Struct's datetimes.
    return msgspec.convert(value, kind, strict=False)


# ---------------------------------------------------------------- who may touch which store

_staff = require_role("admin", "partner")
"""Catalog edits, order search and item lists: an admin, or a partner within its stores."""

_ordering = require_role("admin", "customer")
"""Creating orders: an admin key (orders taken by staff) or a WebApp customer."""


def _stores_of(actor: Actor) -> frozenset[str] | None:
    """The stores ``actor`` manages: None for all of them (an admin, an unscoped partner)."""
    if actor.has_role("admin"):
        return None
    return actor.scope_of("partner", "store")


def _named_store(actor: Actor, store_id: str) -> None:
    """Refuse a request naming a store the actor does not manage.

    Raises:
        Forbidden: 403 ``orders.store_out_of_scope`` with ``stores`` (those it manages).
    """
    stores = _stores_of(actor)
    if stores is not None and store_id not in stores:
        raise Forbidden(
            "orders.store_out_of_scope",
            f"this key acts for the stores {', '.join(sorted(stores)) or 'none'}, not {store_id!r}",
            stores=sorted(stores),
        )


def _own_store(actor: Actor, store_id: str | None, what: str) -> None:
    """Hide an entity of a store the actor does not manage: 404, as if it did not exist.

    Raises:
        NotFound: ``orders.not_found``.
    """
    stores = _stores_of(actor)
    if store_id is not None and stores is not None and store_id not in stores:
        raise NotFound("orders.not_found", f"no {what}")


async def _category_store(tenant: Tenant, category_id: str) -> str | None:
    async with tenant.db.acquire() as conn:
        category = await repo.get_category(conn, category_id)
    return None if category is None else category["store_id"]


async def _item_store(tenant: Tenant, item_id: int) -> str | None:
    async with tenant.db.acquire() as conn:
        item = await repo.get_item(conn, item_id)
    return None if item is None else item["store_id"]


# ---------------------------------------------------------------- catalog


class CatalogController(Controller):
    """Catalog: read by customers and keys, edited by admins and the stores' partners."""

    path = "/"

    @get(
        "/catalog",
        guards=[require_api_key_or_webapp],
        summary="Stores with categories and available items",
    )
    async def read_catalog(
        self, tenant: TenantDep, actor: ActorDep, store: FromQuery[str | None] = None
    ) -> list[CatalogStore]:
        """Every store (or ``?store=``) with categories and orderable items; prices in minor units.

        A partner key sees its own stores only (WebApp users see every store).

        Raises:
            NotFound: ``orders.unknown_store``.
            Forbidden: ``orders.store_out_of_scope``, a partner key naming another store.
        """
        stores = _stores_of(actor) if actor.via == "api_key" else None
        if store is not None and stores is not None:
            _named_store(actor, store)
        result = await catalog.catalog(tenant, store)
        if stores is not None:
            result = [entry for entry in result if entry["id"] in stores]
        return _view(list[CatalogStore], result)

    @post(
        "/categories", guards=[require_api_key, _staff, limit_writes], summary="Create a category"
    )
    async def create_category(
        self, tenant: TenantDep, actor: ActorDep, data: JSONBody[CategoryIn]
    ) -> CategoryView:
        """201 with the category; 400 ``orders.unknown_store`` or ``orders.category_exists``;
        403 ``orders.store_out_of_scope``."""
        _named_store(actor, data.store_id)
        return _view(
            CategoryView,
            await catalog.create_category(tenant, data.id, data.store_id, data.name, data.position),
        )

    @patch(
        "/categories/{category_id:str}",
        guards=[require_api_key, _staff, limit_writes],
        summary="Rename or reorder a category",
    )
    async def update_category(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        category_id: FromPath[str],
        data: JSONBody[CategoryPatch],
    ) -> CategoryView:
        """200 with the category; 404 ``orders.not_found`` (also another store's)."""
        _own_store(actor, await _category_store(tenant, category_id), f"category {category_id!r}")
        return _view(
            CategoryView,
            await catalog.update_category(tenant, category_id, data.name, data.position),
        )

    @delete(
        "/categories/{category_id:str}",
        guards=[require_api_key, _staff, limit_writes],
        summary="Archive a category and its items",
    )
    async def delete_category(
        self, tenant: TenantDep, actor: ActorDep, category_id: FromPath[str]
    ) -> None:
        """204; 404 unknown (or another store's)."""
        _own_store(actor, await _category_store(tenant, category_id), f"category {category_id!r}")
        await catalog.archive_category(tenant, category_id)

    @get("/items", guards=[require_api_key, _staff], summary="Items, including unavailable ones")
    async def list_items(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        store: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
    ) -> list[ItemView]:
        """Live (not archived) items filtered by ``?store=`` and ``?category=``.

        A partner key lists its own stores' items only; naming another store
        is 403 ``orders.store_out_of_scope``.
        """
        if store is not None:
            _named_store(actor, store)
        stores = _stores_of(actor)
        async with tenant.db.acquire() as conn:
            rows = await repo.list_items(conn, store_id=store, category_id=category)
        return [_view(ItemView, dict(r)) for r in rows if stores is None or r["store_id"] in stores]

    @post("/items", guards=[require_api_key, _staff, limit_writes], summary="Create an item")
    async def create_item(
        self, tenant: TenantDep, actor: ActorDep, data: JSONBody[ItemIn]
    ) -> ItemView:
        """201 with the item (``id`` assigned); 400 ``orders.unknown_category`` (also another
        store's category for a partner key) or ``orders.sku_exists``."""
        store_id = await _category_store(tenant, data.category_id)
        stores = _stores_of(actor)
        if store_id is not None and stores is not None and store_id not in stores:
            raise BadRequest("orders.unknown_category", f"unknown category {data.category_id!r}")
        return _view(ItemView, await catalog.create_item(tenant, msgspec.structs.asdict(data)))

    @patch(
        "/items/{item_id:int}",
        guards=[require_api_key, _staff, limit_writes],
        summary="Change an item",
    )
    async def update_item(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        item_id: FromPath[int],
        data: JSONBody[ItemPatch],
    ) -> ItemView:
        """200 with the item; 404 ``orders.not_found`` (also another store's); 400
        ``orders.unknown_category``."""
        _own_store(actor, await _item_store(tenant, item_id), f"item {item_id}")
        return _view(
            ItemView, await catalog.update_item(tenant, item_id, msgspec.structs.asdict(data))
        )

    @delete(
        "/items/{item_id:int}",
        guards=[require_api_key, _staff, limit_writes],
        summary="Archive an item",
    )
    async def delete_item(self, tenant: TenantDep, actor: ActorDep, item_id: FromPath[int]) -> None:
        """204; 404 unknown (or another store's). Past orders keep it; seeding does not bring it back."""
        _own_store(actor, await _item_store(tenant, item_id), f"item {item_id}")
        await catalog.archive_item(tenant, item_id)


# ---------------------------------------------------------------- orders


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
