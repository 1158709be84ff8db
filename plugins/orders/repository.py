"""SQL of the orders plugin: plain asyncpg calls on a connection whose search_path is the tenant's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from plugins.orders.config import CategorySeed, ItemSeed, StoreSettings

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_ORDER_COLUMNS = """
    id, store_id, customer_id, customer_name, type, status, address, latitude, longitude,
    phone, comment, subtotal, delivery_fee, total, currency, created_at, updated_at
"""
_ORDER_FIELDS = tuple(column.strip() for column in _ORDER_COLUMNS.split(","))
_PRICE_ORDER = Path(__file__).with_name("price_order.sql").read_text(encoding="utf-8")
_CREATE_ORDER = Path(__file__).with_name("create_order.sql").read_text(encoding="utf-8")
_ITEM_COLUMNS = "id, store_id, category_id, sku, name, description, price, available, updated_at"

# ---------------------------------------------------------------- seed


async def upsert_store(conn: Conn, store: StoreSettings) -> None:
    """Insert or overwrite a store from YAML (YAML is the source of truth for stores)."""
    await conn.execute(
        """
        INSERT INTO stores (id, name, partner_ids, pickup, delivery, delivery_fee, min_order, currency, address)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, partner_ids = EXCLUDED.partner_ids, pickup = EXCLUDED.pickup,
            delivery = EXCLUDED.delivery, delivery_fee = EXCLUDED.delivery_fee,
            min_order = EXCLUDED.min_order, currency = EXCLUDED.currency,
            address = EXCLUDED.address, updated_at = now()
        """,
        store.id,
        store.name,
        store.partners,
        store.pickup,
        store.delivery,
        store.delivery_fee,
        store.min_order,
        store.currency,
        store.address,
    )


async def insert_category_if_missing(conn: Conn, category: CategorySeed) -> bool:
    """Create a seed category unless its id exists; True when inserted."""
    status = await conn.execute(
        "INSERT INTO categories (id, store_id, name, position) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING",
        category.id,
        category.store,
        category.name,
        category.position,
    )
    return status.endswith(" 1")


async def insert_item_if_missing(conn: Conn, item: ItemSeed) -> bool:
    """Create a seed item unless ``(store, sku)`` exists (even archived); True when inserted."""
    status = await conn.execute(
        "INSERT INTO items (store_id, category_id, sku, name, description, price, available)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (store_id, sku) DO NOTHING",
        item.store,
        item.category,
        item.sku,
        item.name,
        item.description,
        item.price,
        item.available,
    )
    return status.endswith(" 1")


# ---------------------------------------------------------------- catalog


async def list_stores(conn: Conn) -> list[asyncpg.Record]:
    """Every store, by name."""
    return await conn.fetch("SELECT * FROM stores ORDER BY name, id")


async def get_store(conn: Conn, store_id: str) -> asyncpg.Record | None:
    """One store or None."""
    return await conn.fetchrow("SELECT * FROM stores WHERE id = $1", store_id)


async def list_categories(conn: Conn, store_id: str | None = None) -> list[asyncpg.Record]:
    """Live categories, of one store or all, by position."""
    return await conn.fetch(
        "SELECT id, store_id, name, position FROM categories"
        " WHERE NOT archived AND ($1::text IS NULL OR store_id = $1) ORDER BY store_id, position, name",
        store_id,
    )


async def get_category(conn: Conn, category_id: str) -> asyncpg.Record | None:
    """One live category or None."""
    return await conn.fetchrow(
        "SELECT id, store_id, name, position FROM categories WHERE id = $1 AND NOT archived",
        category_id,
    )


async def create_category(
    conn: Conn, category_id: str, store_id: str, name: str, position: int
) -> asyncpg.Record | None:
    """Insert a category; None when the id is taken."""
    return await conn.fetchrow(
        "INSERT INTO categories (id, store_id, name, position) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING RETURNING id, store_id, name, position",
        category_id,
        store_id,
        name,
        position,
    )


async def update_category(
    conn: Conn, category_id: str, name: str | None, position: int | None
) -> asyncpg.Record | None:
    """Change a live category's name and/or position; None when missing."""
    return await conn.fetchrow(
        "UPDATE categories SET name = coalesce($2, name), position = coalesce($3, position)"
        " WHERE id = $1 AND NOT archived RETURNING id, store_id, name, position",
        category_id,
        name,
        position,
    )


async def archive_category(conn: Conn, category_id: str) -> bool:
    """Archive a category and its items; True when it existed."""
    status = await conn.execute(
        "UPDATE categories SET archived = true WHERE id = $1 AND NOT archived", category_id
    )
    if not status.endswith(" 1"):
        return False
    await conn.execute(
        "UPDATE items SET archived = true, updated_at = now() WHERE category_id = $1", category_id
    )
    return True


async def list_items(
    conn: Conn,
    *,
    store_id: str | None = None,
    category_id: str | None = None,
    only_available: bool = False,
) -> list[asyncpg.Record]:
    """Live items filtered by store and/or category, by name."""
    return await conn.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE NOT archived"
        " AND ($1::text IS NULL OR store_id = $1) AND ($2::text IS NULL OR category_id = $2)"
        " AND (NOT $3 OR available) ORDER BY name, id",
        store_id,
        category_id,
        only_available,
    )


async def get_item(conn: Conn, item_id: int) -> asyncpg.Record | None:
    """One live item or None."""
    return await conn.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = $1 AND NOT archived", item_id
    )


async def create_item(conn: Conn, fields: dict[str, Any]) -> asyncpg.Record | None:
    """Insert an item from ``fields`` (store_id, category_id, sku, name, description, price, available); None when the sku is taken."""
    return await conn.fetchrow(
        "INSERT INTO items (store_id, category_id, sku, name, description, price, available)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (store_id, sku) DO NOTHING"
        f" RETURNING {_ITEM_COLUMNS}",
        fields["store_id"],
        fields["category_id"],
        fields["sku"],
        fields["name"],
        fields["description"],
        fields["price"],
        fields["available"],
    )


async def update_item(conn: Conn, item_id: int, changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply ``changes`` (any of name, description, price, available, category_id); None when missing."""
    return await conn.fetchrow(
        "UPDATE items SET name = coalesce($2, name), description = coalesce($3, description),"
        " price = coalesce($4, price), available = coalesce($5, available),"
        " category_id = coalesce($6, category_id), updated_at = now()"
        f" WHERE id = $1 AND NOT archived RETURNING {_ITEM_COLUMNS}",
        item_id,
        changes.get("name"),
        changes.get("description"),
        changes.get("price"),
        changes.get("available"),
        changes.get("category_id"),
    )


async def archive_item(conn: Conn, item_id: int) -> bool:
    """Archive an item (orders keep referencing it); True when it existed."""
    status = await conn.execute(
        "UPDATE items SET archived = true, updated_at = now() WHERE id = $1 AND NOT archived",
        item_id,
    )
    return status.endswith(" 1")


async def pricing_reads(
    conn: Conn,
    store_id: str,
    item_ids: Sequence[int],
    customer_id: int | None,
    excluded: Sequence[str],
) -> tuple[asyncpg.Record | None, list[asyncpg.Record], int | None]:
    """The store, its orderable items among ``item_ids`` (share-locked) and a customer's active orders.

    One statement (``price_order.sql``). Inside a transaction the item
    locks hold until it ends, so the prices read are the prices written.

    Args:
        customer_id: count this customer's orders not in ``excluded``; None
            to count nothing.

    Returns:
        ``(store or None, [{id, name, price}] by id, active orders or None)``.
    """
    row = await conn.fetchrow(_PRICE_ORDER, store_id, list(item_ids), customer_id, list(excluded))
    store = row if row["id"] is not None else None
    items = [
        {"id": item_id, "name": name, "price": price}
        for item_id, name, price in zip(
            row["item_ids"], row["item_names"], row["item_prices"], strict=True
        )
    ]
    return store, items, row["active_orders"]


# ---------------------------------------------------------------- orders


async def create_order(
    conn: Conn,
    order: dict[str, Any],
    lines: Sequence[tuple[int, str, int, int]],
    actor_id: int | None,
    role: str,
    reason: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Insert an order, its lines and its first history row in one statement (``create_order.sql``).

    Args:
        order: the orders columns (status is the initial one, recorded in the history).
        lines: ``(item_id, name, unit_price, quantity)``, at least one.
        actor_id / role / reason: the history row's.

    Returns:
        ``(order row as a dict, lines by name)``; each line has ``item_id,
        name, unit_price, quantity, line_total``, as :func:`order_lines` gives them.
    """
    rows = await conn.fetch(
        _CREATE_ORDER,
        order["store_id"],
        order["customer_id"],
        order["customer_name"],
        order["type"],
        order["status"],
        order["address"],
        order["latitude"],
        order["longitude"],
        order["phone"],
        order["comment"],
        order["subtotal"],
        order["delivery_fee"],
        order["total"],
        order["currency"],
        [line[0] for line in lines],
        [line[1] for line in lines],
        [line[2] for line in lines],
        [line[3] for line in lines],
        actor_id,
        role,
        reason,
    )
    created = {column: rows[0][column] for column in _ORDER_FIELDS}
    return created, [
        {
            "item_id": r["line_item_id"],
            "name": r["line_name"],
            "unit_price": r["line_unit_price"],
            "quantity": r["line_quantity"],
            "line_total": r["line_line_total"],
        }
        for r in rows
    ]


async def insert_history(
    conn: Conn,
    order_id: int,
    from_status: str | None,
    to_status: str,
    actor_id: int | None,
    role: str,
    reason: str,
    key_name: str | None = None,
) -> None:
    """Record one status change (``from_status`` None for creation; ``key_name``: the API key's name)."""
    await conn.execute(
        "INSERT INTO order_history"
        " (order_id, from_status, to_status, actor_id, role, reason, key_name)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order_id,
        from_status,
        to_status,
        actor_id,
        role,
        reason,
        key_name,
    )


async def get_order(
    conn: Conn, order_id: int, *, for_update: bool = False
) -> asyncpg.Record | None:
    """One order; ``for_update`` row-locks it until the transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = $1{lock}", order_id)


async def set_order_status(conn: Conn, order_id: int, status: str) -> None:
    """Write the new status of a locked order."""
    await conn.execute(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1", order_id, status
    )


async def order_lines(conn: Conn, order_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Lines of the given orders, by order then name."""
    return await conn.fetch(
        "SELECT order_id, item_id, name, unit_price, quantity, line_total FROM order_items"
        " WHERE order_id = ANY($1::bigint[]) ORDER BY order_id, name",
        list(order_ids),
    )


async def customer_orders(conn: Conn, customer_id: int, limit: int) -> list[asyncpg.Record]:
    """A customer's latest orders, newest first."""
    return await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        customer_id,
        limit,
    )


def customer_orders_lock(schema: str, customer_id: int) -> str:
    """The advisory lock key that serialises one customer's order creates (``transaction(lock=...)``).

    Advisory locks are database-wide, so the key names the schema as well as
    the customer.
    """
    return f"tenantry:orders-cap:{schema}:{customer_id}"


async def search_orders(
    conn: Conn,
    store_ids: Sequence[str] | None,
    status: str | None,
    limit: int,
    before_id: int | None,
) -> list[asyncpg.Record]:
    """Orders of ``store_ids`` (None: every store) in ``status``, newest first, keyset-paged by id."""
    return await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE ($1::text[] IS NULL OR store_id = ANY($1))"
        " AND ($2::text IS NULL OR status = $2) AND ($4::bigint IS NULL OR id < $4)"
        " ORDER BY id DESC LIMIT $3",
        None if store_ids is None else list(store_ids),
        status,
        limit,
        before_id,
    )


async def order_history(conn: Conn, order_id: int) -> list[asyncpg.Record]:
    """Status changes of an order, oldest first."""
    return await conn.fetch(
        "SELECT from_status, to_status, actor_id, role, reason, key_name, at FROM order_history"
        " WHERE order_id = $1 ORDER BY id",
        order_id,
    )


async def stale_order_ids(
    conn: Conn, status: str, created_before: datetime, limit: int
) -> list[int]:
    """Ids of orders in ``status`` created before ``created_before`` (UTC), oldest first."""
    rows = await conn.fetch(
        "SELECT id FROM orders WHERE status = $1 AND created_at < $2 ORDER BY created_at LIMIT $3",
        status,
        created_before,
        limit,
    )
    return [row["id"] for row in rows]


# ---------------------------------------------------------------- partner messages


async def save_partner_message(conn: Conn, order_id: int, chat_id: int, message_id: int) -> None:
    """Remember the message that told partner ``chat_id`` about an order."""
    await conn.execute(
        "INSERT INTO partner_messages (order_id, chat_id, message_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id, chat_id) DO UPDATE SET message_id = EXCLUDED.message_id",
        order_id,
        chat_id,
        message_id,
    )


async def partner_messages(conn: Conn, order_id: int) -> list[asyncpg.Record]:
    """``(chat_id, message_id)`` of every partner notification of an order."""
    return await conn.fetch(
        "SELECT chat_id, message_id FROM partner_messages WHERE order_id = $1", order_id
    )


# ---------------------------------------------------------------- audience segments


async def customers_of_store(conn: Conn, store_id: str) -> list[int]:
    """Telegram ids of everyone who ever ordered from ``store_id``."""
    rows = await conn.fetch("SELECT DISTINCT customer_id FROM orders WHERE store_id = $1", store_id)
    return [r["customer_id"] for r in rows]


async def recent_customers(conn: Conn, days: int) -> list[int]:
    """Telegram ids of customers with an order created in the last ``days`` days."""
    rows = await conn.fetch(
        "SELECT DISTINCT customer_id FROM orders WHERE created_at > now() - make_interval(days => $1)",
        days,
    )
    return [r["customer_id"] for r in rows]
