"""Fixtures of the orders tests: a marketplace tenant with two stores, driven over HTTP."""

from __future__ import annotations

from typing import Any

import pytest_asyncio

from core.testing.updates import webapp_init_data

PARTNER_A = 7001
PARTNER_B = 7002
FLORIST = 7003
CUSTOMER = 5001
OTHER_CUSTOMER = 5002
ADMIN = 900000001  # the harness's default bot.admins

ORDERS_SETTINGS: dict[str, Any] = {
    "expire_after_minutes": 15,
    "max_active_orders_per_customer": 0,
    "stores": [
        {
            "id": "bakery",
            "name": "Bakery",
            "partners": [PARTNER_A, PARTNER_B],
            "pickup": True,
            "delivery": True,
            "delivery_fee": 15000,
            "min_order": 20000,
            "currency": "RUB",
        },
        {
            "id": "flowers",
            "name": "Flowers",
            "partners": [FLORIST],
            "pickup": True,
            "delivery": False,
        },
    ],
    "categories": [
        {"id": "bread", "store": "bakery", "name": "Bread", "position": 1},
        {"id": "pastry", "store": "bakery", "name": "Pastry", "position": 2},
        {"id": "bouquets", "store": "flowers", "name": "Bouquets"},
    ],
    "items": [
        {
            "sku": "baguette",
            "store": "bakery",
            "category": "bread",
            "name": "Baguette",
            "price": 12000,
        },
        {"sku": "rye", "store": "bakery", "category": "bread", "name": "Rye", "price": 9000},
        {
            "sku": "croissant",
            "store": "bakery",
            "category": "pastry",
            "name": "Croissant",
            "price": 15000,
        },
        {
            "sku": "tulips",
            "store": "flowers",
            "category": "bouquets",
            "name": "Tulips",
            "price": 250000,
        },
    ],
}


class Market:
    """The started ``market`` tenant and helpers to talk to it."""

    def __init__(self, tenantry: Any, config: dict[str, Any]):
        self.h = tenantry
        self.config = config
        self.id = config["id"]
        self.schema = config["storage"]["schema"]
        self.token = config["bot"]["token"]
        self.bot_id = int(self.token.split(":")[0])
        self.base = f"/api/tenants/{self.id}/orders"

    @property
    def tenant(self) -> Any:
        """The running Tenant object."""
        return self.h.runtime.registry.get(self.id)

    async def item_ids(self) -> dict[str, int]:
        """sku -> item id."""
        rows = await self.h.sql(f'SELECT sku, id FROM "{self.schema}".items')
        return {r["sku"]: r["id"] for r in rows}

    async def table(self, name: str, order_by: str = "1") -> list[dict[str, Any]]:
        """All rows of a table of the tenant schema."""
        return await self.h.sql(f'SELECT * FROM "{self.schema}".{name} ORDER BY {order_by}')

    def webapp(self, user_id: int = CUSTOMER, first_name: str = "Anna") -> dict[str, str]:
        """Headers of a WebApp user signed with this tenant's bot token."""
        init = webapp_init_data(self.token, {"id": user_id, "first_name": first_name})
        return {"X-Telegram-Init-Data": init}

    def api(self) -> dict[str, str]:
        """Headers with the tenant API key."""
        return self.h.api_headers(self.id)

    async def create(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """POST an order (as the WebApp customer by default)."""
        return await self.h.client.post(
            f"{self.base}/orders", json=body, headers=headers or self.webapp()
        )

    async def pickup_order(self, user_id: int = CUSTOMER, **extra: Any) -> dict[str, Any]:
        """Create a bakery pickup order of 2 baguettes (24000) and return it."""
        ids = await self.item_ids()
        body = {
            "store_id": "bakery",
            "type": "pickup",
            "items": [{"item_id": ids["baguette"], "quantity": 2}],
            "phone": "+79990001122",
            **extra,
        }
        response = await self.create(body, self.webapp(user_id))
        assert response.status_code == 201, response.text
        return response.json()

    async def set_status(
        self, order_id: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        """POST a status change (API key by default)."""
        return await self.h.client.post(
            f"{self.base}/orders/{order_id}/status", json=body, headers=headers or self.api()
        )


@pytest_asyncio.fixture
async def market(tenantry: Any) -> Market:
    """A started tenant ``market`` with orders enabled (en locale, Europe/Moscow)."""
    # These tests place many orders as one customer within a minute; the rate
    # limits and the cap of active orders have tests of their own.
    config = tenantry.add_tenant(
        "market",
        timezone="Europe/Moscow",
        features={"orders": ORDERS_SETTINGS},
        limits={"api_writes": "1000/minute", "webapp_writes": "1000/minute"},
    )
    await tenantry.start()
    await tenantry.wait_state("market", "running")
    return Market(tenantry, config)
