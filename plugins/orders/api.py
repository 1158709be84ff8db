"""HTTP API of the orders plugin, mounted by the core at ``/api/tenants/{tenant_id}/orders``.

* ``X-API-Key`` (role ``admin``): catalog CRUD, orders by store and status,
  status changes (optionally as a store partner), history.
* ``X-Telegram-Init-Data`` (role ``customer``, identity from the signed init
  data only): catalog, create, my orders, the customer's own status changes.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core.auth import (
    Caller,
    CallerDep,
    TenantDep,
    require_api_key,
    require_api_key_or_webapp,
    require_webapp_user,
)
from core.idempotency import idempotent_response
from plugins.orders import catalog
from plugins.orders import repository as repo
from plugins.orders.errors import OrderError
from plugins.orders.service import (
    OrderDraft,
    OrderLine,
    change_status,
    create_order,
    load_order,
    order_views,
)

__all__ = ["CatalogController", "OrdersController"]

_SLUG = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_MONEY = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


def _order_error(_: Request[Any, Any, Any], exc: OrderError) -> Response[Any]:
    return Response(
        {"status_code": exc.status_code, "detail": exc.detail}, status_code=exc.status_code
    )


# ---------------------------------------------------------------- DTOs


class CategoryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new category: ``id`` slug, its ``store_id``, ``name``, ``position`` (sort order)."""

    id: _SLUG
    store_id: str
    name: _NAME
    position: int = 0


class CategoryPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to a category; omitted fields stay."""

    name: _NAME | None = None
    position: int | None = None


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
        role: API-key callers may act as ``partner`` (with ``actor_id``, a
            partner of the order's store) instead of ``admin``.
        actor_id: Telegram id recorded as who acted (API-key callers).
    """

    status: str
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    expected_status: str | None = None
    role: str | None = None
    actor_id: int | None = None


# ---------------------------------------------------------------- catalog


class CatalogController(Controller):
    """Catalog: read by customers and keys, edited with the API key."""

    path = "/"
    exception_handlers = {OrderError: _order_error}

    @get(
        "/catalog",
        guards=[require_api_key_or_webapp],
        summary="Stores with categories and available items",
    )
    async def read_catalog(
        self, tenant: TenantDep, caller: CallerDep, store: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        """Every store (or ``?store=``) with categories and orderable items; prices in minor units.

        Raises:
            NotFoundException: unknown ``store``.
        """
        return await catalog.catalog(tenant, store)

    @post("/categories", guards=[require_api_key], summary="Create a category")
    async def create_category(
        self, tenant: TenantDep, caller: CallerDep, data: JSONBody[CategoryIn]
    ) -> dict[str, Any]:
        """201 with the category; 400 unknown store or taken id."""
        return await catalog.create_category(
            tenant, data.id, data.store_id, data.name, data.position
        )

    @patch(
        "/categories/{category_id:str}",
        guards=[require_api_key],
        summary="Rename or reorder a category",
    )
    async def update_category(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        category_id: FromPath[str],
        data: JSONBody[CategoryPatch],
    ) -> dict[str, Any]:
        """200 with the category; 404 unknown."""
        return await catalog.update_category(tenant, category_id, data.name, data.position)

    @delete(
        "/categories/{category_id:str}",
        guards=[require_api_key],
        summary="Archive a category and its items",
    )
    async def delete_category(
        self, tenant: TenantDep, caller: CallerDep, category_id: FromPath[str]
    ) -> None:
        """204; 404 unknown."""
        await catalog.archive_category(tenant, category_id)

    @get("/items", guards=[require_api_key], summary="Items, including unavailable ones")
    async def list_items(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        store: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
    ) -> list[dict[str, Any]]:
        """Live (not archived) items filtered by ``?store=`` and ``?category=``."""
        async with tenant.db.acquire() as conn:
            rows = await repo.list_items(conn, store_id=store, category_id=category)
        return [{**dict(r), "updated_at": r["updated_at"].isoformat()} for r in rows]

    @post("/items", guards=[require_api_key], summary="Create an item")
    async def create_item(
        self, tenant: TenantDep, caller: CallerDep, data: JSONBody[ItemIn]
    ) -> dict[str, Any]:
        """201 with the item (``id`` assigned); 400 unknown category or taken sku."""
        return await catalog.create_item(tenant, msgspec.structs.asdict(data))

    @patch("/items/{item_id:int}", guards=[require_api_key], summary="Change an item")
    async def update_item(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        item_id: FromPath[int],
        data: JSONBody[ItemPatch],
    ) -> dict[str, Any]:
        """200 with the item; 404 unknown; 400 category of another store."""
        return await catalog.update_item(tenant, item_id, msgspec.structs.asdict(data))

    @delete("/items/{item_id:int}", guards=[require_api_key], summary="Archive an item")
    async def delete_item(
        self, tenant: TenantDep, caller: CallerDep, item_id: FromPath[int]
    ) -> None:
        """204; 404 unknown. Past orders keep it; seeding does not bring it back."""
        await catalog.archive_item(tenant, item_id)


# ---------------------------------------------------------------- orders


def _owned(order: dict[str, Any], caller: Caller) -> dict[str, Any]:
    if caller.via == "webapp" and order["customer_id"] != caller.user_id:
        raise NotFoundException(detail=f"no order {order['id']}")
    return order


class OrdersController(Controller):
    """Orders: create (Idempotency-Key), list, read, change status, history."""

    path = "/orders"
    exception_handlers = {OrderError: _order_error}

    @post(
        "/",
        guards=[require_api_key_or_webapp],
        summary="Create an order (Idempotency-Key supported)",
    )
    async def create(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        request: Request[Any, Any, Any],
        data: JSONBody[OrderIn],
    ) -> Response[Any]:
        """Create an order priced from current database prices.

        Returns:
            201 with the order (``Idempotent-Replayed: true`` on a replay);
            400 bad input or unavailable items; 409 the same key in flight;
            422 the same key with another body.
        """
        if caller.via == "webapp":
            if data.customer_id is not None:
                raise ClientException(
                    detail="customer_id is taken from X-Telegram-Init-Data; leave it out"
                )
            customer_id = caller.user_id
            user = caller.user
            name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
            source = "webapp"
        else:
            if data.customer_id is None:
                raise ClientException(
                    detail="customer_id (Telegram user id) is required with an API key"
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
            return 201, order

        return await idempotent_response(request, tenant, f"orders.create:{customer_id}", run)

    @get("/", guards=[require_api_key], summary="Orders by store and status, newest first")
    async def search(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        store: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        before: FromQuery[int | None] = None,
    ) -> list[dict[str, Any]]:
        """Orders filtered by ``?store=`` and ``?status=``; page with ``?before=<last id>``.

        Raises:
            ClientException: unknown status.
        """
        if status is not None and status not in tenant.statuses["orders"].states:
            raise ClientException(
                detail=f"unknown status {status!r}; known: {', '.join(tenant.statuses['orders'].states)}"
            )
        async with tenant.db.acquire() as conn:
            rows = await repo.search_orders(conn, store, status, limit, before)
            return await order_views(conn, rows)

    @get("/my", guards=[require_webapp_user], summary="The WebApp user's orders")
    async def mine(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> list[dict[str, Any]]:
        """The caller's latest orders, newest first."""
        async with tenant.db.acquire() as conn:
            rows = await repo.customer_orders(conn, caller.user_id, limit)  # type: ignore[arg-type]
            return await order_views(conn, rows)

    @get("/{order_id:int}", guards=[require_api_key_or_webapp], summary="One order")
    async def read(
        self, tenant: TenantDep, caller: CallerDep, order_id: FromPath[int]
    ) -> dict[str, Any]:
        """The order with its lines; 404 unknown (or another customer's)."""
        return _owned(await load_order(tenant, order_id), caller)

    @post(
        "/{order_id:int}/status",
        guards=[require_api_key_or_webapp],
        status_code=200,
        summary="Change status",
    )
    async def set_status(
        self,
        tenant: TenantDep,
        caller: CallerDep,
        order_id: FromPath[int],
        data: JSONBody[StatusChangeIn],
    ) -> dict[str, Any]:
        """Apply a transition through the tenant's machine.

        Returns:
            200 with the order; 404 unknown order; 403 not a partner of the
            store; 409 ``{detail, current, allowed}`` when the machine refuses
            or the order moved first.
        """
        if caller.via == "webapp":
            if data.role is not None or data.actor_id is not None:
                raise PermissionDeniedException(
                    detail="WebApp users act as themselves, in the customer role"
                )
            role, actor_id = "customer", caller.user_id
        else:
            role = data.role or "admin"
            if role not in ("admin", "partner"):
                raise ClientException(detail="role must be admin or partner")
            if role == "partner" and data.actor_id is None:
                raise ClientException(
                    detail="acting as partner needs actor_id (the partner's Telegram id)"
                )
            actor_id = data.actor_id
        return await change_status(
            tenant,
            order_id,
            data.status,
            role=role,
            actor_id=actor_id,
            reason=data.reason,
            expected=data.expected_status,
        )

    @get(
        "/{order_id:int}/history",
        guards=[require_api_key_or_webapp],
        summary="Status history of an order",
    )
    async def history(
        self, tenant: TenantDep, caller: CallerDep, order_id: FromPath[int]
    ) -> list[dict[str, Any]]:
        """``[{from_status, to_status, actor_id, role, reason, at}]``, oldest first; 404 unknown."""
        _owned(await load_order(tenant, order_id), caller)
        async with tenant.db.acquire() as conn:
            rows = await repo.order_history(conn, order_id)
        return [{**dict(r), "at": r["at"].isoformat()} for r in rows]
