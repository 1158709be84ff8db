"""The customer's cart: a Redis hash per user under the tenant's prefix (survives restarts).

Key ``tenant.key("cart", user_id)``; fields ``store`` (the store id) and
``<item id>`` -> quantity. Only ids and quantities are kept: prices are read
from the database when the cart is shown and when the order is created.
"""

from __future__ import annotations

from core import Tenant

__all__ = ["add_item", "change_quantity", "clear", "read"]

_STORE_FIELD = "store"


def _key(tenant: Tenant, user_id: int) -> str:
    return tenant.key("cart", user_id)


async def read(tenant: Tenant, user_id: int) -> tuple[str | None, dict[int, int]]:
    """Return ``(store id or None, item id -> quantity)``."""
    raw = await tenant.redis.hgetall(_key(tenant, user_id))
    store = raw.pop(_STORE_FIELD, None)
    return store, {int(item): int(qty) for item, qty in raw.items() if int(qty) > 0}


async def add_item(
    tenant: Tenant, user_id: int, store_id: str, item_id: int, ttl_seconds: int
) -> tuple[int, bool]:
    """Add one of ``item_id``; a cart of another store is emptied first.

    Returns:
        ``(new quantity, switched)``; switched is True when another store's
        cart was dropped.
    """
    key = _key(tenant, user_id)
    current = await tenant.redis.hget(key, _STORE_FIELD)
    switched = current is not None and current != store_id
    async with tenant.redis.pipeline(transaction=True) as pipe:
        if switched:
            pipe.delete(key)
        pipe.hset(key, _STORE_FIELD, store_id)
        pipe.hincrby(key, str(item_id), 1)
        pipe.expire(key, ttl_seconds)
        results = await pipe.execute()
    return int(results[-2]), switched


async def change_quantity(
    tenant: Tenant, user_id: int, item_id: int, delta: int, limit: int, ttl_seconds: int
) -> int:
    """Change a line by ``delta`` within 0..``limit``; a line at 0 is removed. Returns the new quantity."""
    key = _key(tenant, user_id)
    quantity = int(await tenant.redis.hget(key, str(item_id)) or 0)
    quantity = max(0, min(limit, quantity + delta))
    if quantity == 0:
        await tenant.redis.hdel(key, str(item_id))
        if await tenant.redis.hlen(key) <= 1:  # only the store field is left
            await tenant.redis.delete(key)
    else:
        await tenant.redis.hset(key, str(item_id), quantity)
        await tenant.redis.expire(key, ttl_seconds)
    return quantity


async def clear(tenant: Tenant, user_id: int) -> None:
    """Empty the cart."""
    await tenant.redis.delete(_key(tenant, user_id))
