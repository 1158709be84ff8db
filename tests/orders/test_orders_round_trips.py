"""Round trips of one order create through the API: what each request sends to PostgreSQL and Redis."""

from __future__ import annotations

from _round_trips import RoundTrips
from conftest import ORDERS_SETTINGS


async def test_an_api_create_makes_four_postgres_and_three_redis_round_trips(tenantry, monkeypatch):
    config = tenantry.add_tenant(
        "shop",
        features={"orders": {**ORDERS_SETTINGS, "max_active_orders_per_customer": 5}},
        limits={"api_writes": "1000/minute"},
    )
    schema = config["storage"]["schema"]
    await tenantry.start()
    ids = {r["sku"]: r["id"] for r in await tenantry.sql(f'SELECT sku, id FROM "{schema}".items')}
    url = "/api/tenants/shop/orders/orders"

    async def create(key: str, customer_id: int) -> dict:
        body = {
            "store_id": "bakery",
            "type": "pickup",
            "phone": "+79990001122",
            "customer_id": customer_id,
            "customer_name": "Anna",
            "items": [
                {"item_id": ids["croissant"], "quantity": 1},
                {"item_id": ids["baguette"], "quantity": 2},
            ],
        }
        headers = {**tenantry.api_headers("shop"), "Idempotency-Key": key}
        response = await tenantry.client.post(url, json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    await create("warm", 100)  # every statement of the path gets prepared (and cached) once
    trips = RoundTrips(monkeypatch)

    order = await create("k", 101)

    calls = trips.of_request("INSERT INTO orders")
    # BEGIN with SET LOCAL search_path and the customer's lock, the active
    # orders + store + locked items, the order with its lines and history, and
    # the outbox row + NOTIFY with COMMIT and the session reset (the release
    # sends nothing).
    assert len(calls["postgres"]) == 4, "\n".join(calls["postgres"])
    assert calls["postgres"][0].startswith("BEGIN ISOLATION LEVEL READ COMMITTED;SET LOCAL")
    assert "pg_advisory_xact_lock(hashtextextended('tenantry:orders-cap:" in calls["postgres"][0]
    assert calls["postgres"][-1].startswith("INSERT INTO tenantry_outbox ")
    assert ";COMMIT;SELECT pg_advisory_unlock_all();" in calls["postgres"][-1]
    # The rate-limit script, the Idempotency-Key claim and the stored answer.
    assert len(calls["redis"]) == 3, "\n".join(calls["redis"])
    assert [(i["name"], i["quantity"], i["line_total"]) for i in order["items"]] == [
        ("Baguette", 2, 24000),
        ("Croissant", 1, 15000),
    ]
    assert (order["subtotal"], order["total"], order["status"]) == (39000, 39000, "pending")
    history = await tenantry.sql(
        f'SELECT from_status, to_status, actor_id, role, reason FROM "{schema}".order_history'
        " WHERE order_id = $1",
        order["id"],
    )
    assert history == [
        {
            "from_status": None,
            "to_status": "pending",
            "actor_id": 101,
            "role": "admin",
            "reason": "created",
        }
    ]
