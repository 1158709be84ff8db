"""Stores, categories and items: seeding from YAML and the catalog CRUD used by the API.

Seeding rule (``on_tenant_started``, idempotent):

* stores are upserted: the YAML is their source of truth;
* categories and items are inserted only when missing (categories by id,
  items by ``(store, sku)``), so edits made through the API survive restarts
  and an item archived through the API is not brought back.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from core import Tenant
from core.errors import BadRequest, NotFound
from plugins.orders import repository as repo
from plugins.orders.service import settings_of

__all__ = [
    "archive_category",
    "archive_item",
    "catalog",
    "create_category",
    "create_item",
    "seed",
    "update_category",
    "update_item",
]


async def seed(tenant: Tenant) -> dict[str, int]:
    """Upsert stores and insert missing seed categories and items, in one transaction.

    Returns:
        Counts: ``{"stores": n, "categories": inserted, "items": inserted}``.
    """
    settings = settings_of(tenant)
    inserted_categories = inserted_items = 0
    async with tenant.db.transaction() as conn:
        for store in settings.stores:
            await repo.upsert_store(conn, store)
        for category in settings.categories:
            inserted_categories += await repo.insert_category_if_missing(conn, category)
        for item in settings.items:
            inserted_items += await repo.insert_item_if_missing(conn, item)
    return {
        "stores": len(settings.stores),
        "categories": inserted_categories,
        "items": inserted_items,
    }


def _item(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["updated_at"] = row["updated_at"].isoformat()
    return item


async def catalog(
    tenant: Tenant, store_id: str | None = None, *, only_available: bool = True
) -> list[dict[str, Any]]:
    """Stores with their categories and items, as the WebApp shows them.

    Returns:
        ``[{id, name, pickup, delivery, delivery_fee, min_order, currency,
        address, categories: [{id, name, position, items: [...]}]}]``; prices
        in minor units.

    Raises:
        NotFound: ``orders.unknown_store``, ``store_id`` is given and unknown.
    """
    async with tenant.db.acquire() as conn:
        stores = await repo.list_stores(conn)
        if store_id is not None:
            stores = [s for s in stores if s["id"] == store_id]
            if not stores:
                raise NotFound("orders.unknown_store", f"unknown store {store_id!r}")
        categories = await repo.list_categories(conn, store_id)
        items = await repo.list_items(conn, store_id=store_id, only_available=only_available)
    items_by_category: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        items_by_category.setdefault(item["category_id"], []).append(_item(item))
    result = []
    for store in stores:
        result.append(
            {
                "id": store["id"],
                "name": store["name"],
                "pickup": store["pickup"],
                "delivery": store["delivery"],
                "delivery_fee": store["delivery_fee"],
                "min_order": store["min_order"],
                "currency": store["currency"],
                "address": store["address"],
                "categories": [
                    {
                        "id": c["id"],
                        "name": c["name"],
                        "position": c["position"],
                        "items": items_by_category.get(c["id"], []),
                    }
                    for c in categories
                    if c["store_id"] == store["id"]
                ],
            }
        )
    return result


async def create_category(
    tenant: Tenant, category_id: str, store_id: str, name: str, position: int
) -> dict[str, Any]:
    """Create a category.

    Raises:
        BadRequest: ``orders.unknown_store``; ``orders.category_exists``, the id is taken.
    """
    async with tenant.db.transaction() as conn:
        if await repo.get_store(conn, store_id) is None:
            raise BadRequest("orders.unknown_store", f"unknown store {store_id!r}")
        row = await repo.create_category(conn, category_id, store_id, name, position)
    if row is None:
        raise BadRequest("orders.category_exists", f"category {category_id!r} already exists")
    return dict(row)


async def update_category(
    tenant: Tenant, category_id: str, name: str | None, position: int | None
) -> dict[str, Any]:
    """Rename or reorder a category.

    Raises:
        NotFound: ``orders.not_found``, no such live category.
    """
    async with tenant.db.transaction() as conn:
        row = await repo.update_category(conn, category_id, name, position)
    if row is None:
        raise NotFound("orders.not_found", f"no category {category_id!r}")
    return dict(row)


async def archive_category(tenant: Tenant, category_id: str) -> None:
    """Archive a category and its items (past orders keep them).

    Raises:
        NotFound: ``orders.not_found``, no such live category.
    """
    async with tenant.db.transaction() as conn:
        if not await repo.archive_category(conn, category_id):
            raise NotFound("orders.not_found", f"no category {category_id!r}")


async def create_item(tenant: Tenant, fields: dict[str, Any]) -> dict[str, Any]:
    """Create an item; ``fields``: category_id, sku, name, description, price (minor units), available.

    The store is the category's.

    Raises:
        BadRequest: ``orders.unknown_category``; ``orders.sku_exists``, the sku is
            taken in that store.
    """
    async with tenant.db.transaction() as conn:
        category = await repo.get_category(conn, fields["category_id"])
        if category is None:
            raise BadRequest(
                "orders.unknown_category", f"unknown category {fields['category_id']!r}"
            )
        row = await repo.create_item(conn, {**fields, "store_id": category["store_id"]})
    if row is None:
        raise BadRequest(
            "orders.sku_exists",
            f"sku {fields['sku']!r} already exists in store {category['store_id']!r}",
        )
    return _item(row)


async def update_item(tenant: Tenant, item_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Change an item's name, description, price, availability or category (same store).

    Raises:
        NotFound: ``orders.not_found``, no such live item.
        BadRequest: ``orders.unknown_category``, the new category is unknown or
            belongs to another store.
    """
    async with tenant.db.transaction() as conn:
        item = await repo.get_item(conn, item_id)
        if item is None:
            raise NotFound("orders.not_found", f"no item {item_id}")
        if changes.get("category_id") is not None:
            category = await repo.get_category(conn, changes["category_id"])
            if category is None or category["store_id"] != item["store_id"]:
                raise BadRequest(
                    "orders.unknown_category",
                    f"category {changes['category_id']!r} is not a category of store "
                    f"{item['store_id']!r}",
                )
        row = await repo.update_item(conn, item_id, changes)
    assert row is not None  # the row was read in this transaction
    return _item(row)


async def archive_item(tenant: Tenant, item_id: int) -> None:
    """Archive an item: gone from the catalog, kept for past orders and not re-seeded.

    Raises:
        NotFound: ``orders.not_found``, no such live item.
    """
    async with tenant.db.transaction() as conn:
        if not await repo.archive_item(conn, item_id):
            raise NotFound("orders.not_found", f"no item {item_id}")
