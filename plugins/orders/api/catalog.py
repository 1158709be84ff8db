"""The catalog resource of the orders API: stores with categories and items, and their edits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from core.errors import BadRequest
from core.http.auth import ActorDep, TenantDep, require_api_key, require_api_key_or_webapp
from core.http.ratelimit import limit_writes
from plugins.orders import catalog
from plugins.orders import repository as repo
from plugins.orders.api.access import _named_store, _own_store, _staff, _stores_of
from plugins.orders.api.dto import (
    CatalogStore,
    CategoryIn,
    CategoryPatch,
    CategoryView,
    ItemIn,
    ItemPatch,
    ItemView,
    _view,
)

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["CatalogController"]


async def _category_store(tenant: Tenant, category_id: str) -> str | None:
    async with tenant.db.acquire() as conn:
        category = await repo.get_category(conn, category_id)
    return None if category is None else category["store_id"]


async def _item_store(tenant: Tenant, item_id: int) -> str | None:
    async with tenant.db.acquire() as conn:
        item = await repo.get_item(conn, item_id)
    return None if item is None else item["store_id"]


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
