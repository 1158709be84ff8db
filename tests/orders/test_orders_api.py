"""The HTTP API: server-side totals, Idempotency-Key, bad input, status changes, catalog CRUD."""

from __future__ import annotations

import asyncio

from conftest import CUSTOMER, FLORIST, OTHER_CUSTOMER, PARTNER_A


async def test_client_prices_are_ignored(market):
    ids = await market.item_ids()
    body = {
        "store_id": "bakery",
        "type": "delivery",
        "address": "Lenina 1",
        "phone": "+79990001122",
        "items": [
            {"item_id": ids["baguette"], "quantity": 2, "price": 1},
            {"item_id": ids["rye"], "price": 0},
        ],
        "total": 1,
        "delivery_fee": 0,
    }
    response = await market.create(body)
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["subtotal"], order["delivery_fee"], order["total"]) == (33000, 15000, 48000)
    assert order["customer_id"] == CUSTOMER and order["customer_name"] == "Anna"
    rows = await market.table("order_items", "item_id")
    assert [(r["unit_price"], r["quantity"], r["line_total"]) for r in rows] == [
        (12000, 2, 24000),
        (9000, 1, 9000),
    ]


async def test_idempotent_create(market):
    ids = await market.item_ids()
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "phone": "+79990001122",
        "items": [{"item_id": ids["croissant"], "quantity": 2}],
    }
    headers = {**market.webapp(), "Idempotency-Key": "order-1"}
    first = await market.h.client.post(f"{market.base}/orders", json=body, headers=headers)
    again = await market.h.client.post(f"{market.base}/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await market.h.client.post(
        f"{market.base}/orders", json={**body, "comment": "x"}, headers=headers
    )
    assert other.status_code == 422
    assert len(await market.table("orders")) == 1
    assert len(await market.table("order_history")) == 1


async def test_bad_input_is_a_clear_4xx_and_writes_nothing(market):
    ids = await market.item_ids()
    good = {
        "store_id": "bakery",
        "type": "pickup",
        "phone": "+79990001122",
        "items": [{"item_id": ids["baguette"], "quantity": 2}],
    }
    cases = [
        ({**good, "store_id": "nope"}, "orders.unknown_store", "unknown store 'nope'"),
        ({**good, "type": "teleport"}, "orders.bad_type", "type must be one of pickup, delivery"),
        (
            {**good, "store_id": "flowers", "type": "delivery", "address": "x"},
            "orders.type_not_offered",
            "does not offer delivery",
        ),
        ({**good, "items": []}, "orders.no_items", "no items"),
        (
            {**good, "items": [{"item_id": ids["baguette"], "quantity": 0}]},
            "orders.bad_quantity",
            "at least 1",
        ),
        (
            {**good, "items": [{"item_id": ids["baguette"], "quantity": 500}]},
            "orders.over_max_quantity",
            "over the limit of 99",
        ),
        (
            {**good, "items": [{"item_id": ids["tulips"], "quantity": 1}]},
            "orders.items_unavailable",
            f"not available in store 'bakery': {ids['tulips']}",
        ),
        (
            {**good, "items": [{"item_id": ids["rye"], "quantity": 1}]},
            "orders.below_minimum",
            "minimum order",
        ),
        ({**good, "type": "delivery"}, "orders.address_required", "need an address or a location"),
        (
            {**good, "type": "delivery", "latitude": 55.0},
            "orders.location_pair",
            "both latitude and longitude",
        ),
        ({**good, "phone": ""}, "orders.phone_required", "phone number is required"),
        ({**good, "phone": "call me"}, "orders.bad_phone", "is not a phone number"),
        (
            {**good, "customer_id": OTHER_CUSTOMER},
            "orders.customer_id_not_allowed",
            "customer_id is taken from X-Telegram-Init-Data",
        ),
        ({**good, "items": [{"item_id": "one"}]}, "request.invalid", "items[0].item_id"),
        ({"type": "pickup"}, "request.invalid", "store_id"),
    ]
    problems = {}
    for body, code, reason in cases:
        response = await market.create(body)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        problems.setdefault(code, problem)  # the first of each code
        assert (problem["status"], problem["code"]) == (400, code), (body, problem)
        assert reason in problem["detail"], (reason, problem)
    assert problems["orders.below_minimum"] | {"detail": ""} == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "",
        "code": "orders.below_minimum",
        "minimum": 20000,
        "subtotal": 9000,
        "currency": "RUB",
    }
    assert problems["request.invalid"]["errors"] == [
        {"message": "Expected `int`, got `str`", "key": "items[0].item_id", "source": "body"}
    ]
    assert problems["request.invalid"]["detail"] == (
        "invalid request: items[0].item_id: Expected `int`, got `str`"
    )
    raw = await market.h.client.post(
        f"{market.base}/orders",
        content=b"{not json",
        headers={**market.webapp(), "Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["code"] == "request.malformed_json"
    anonymous = await market.h.client.post(f"{market.base}/orders", json=good)
    assert anonymous.status_code == 401
    with_key = await market.create(good, market.api())
    assert with_key.status_code == 400
    assert with_key.json()["code"] == "orders.customer_id_required"
    assert await market.table("orders") == []
    assert await market.table("order_history") == []


async def test_status_changes_by_api_roles_and_machine(market, bot_api):
    order = await market.pickup_order()
    oid = order["id"]
    # Acting as partner needs a partner of this store.
    response = await market.set_status(
        oid, {"status": "preparing", "role": "partner", "actor_id": FLORIST}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "orders.not_partner"
    assert "not a partner of store 'bakery'" in response.json()["detail"]
    response = await market.set_status(
        oid, {"status": "preparing", "role": "partner", "actor_id": PARTNER_A, "reason": "on it"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "preparing"
    # Illegal move: 409 with the current state and what is allowed.
    response = await market.set_status(oid, {"status": "completed"})
    assert response.status_code == 409
    assert response.json() | {"detail": ""} == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "",
        "code": "status.not_allowed",
        "current": "preparing",
        "target": "completed",
        "allowed": ["ready", "cancelled"],
    }
    # A partner may not cancel an accepted order (admin only).
    response = await market.set_status(
        oid, {"status": "cancelled", "role": "partner", "actor_id": PARTNER_A}
    )
    assert response.status_code == 409 and response.json()["allowed"] == ["ready"]
    assert (await market.set_status(oid, {"status": "ready"})).status_code == 200
    # `when: {type: delivery}`: a pickup order is never out for delivery.
    response = await market.set_status(oid, {"status": "delivering"})
    assert response.status_code == 409 and "does not apply" in response.json()["detail"]
    # expected_status guards against acting on a stale view.
    response = await market.set_status(oid, {"status": "completed", "expected_status": "preparing"})
    assert response.status_code == 409 and response.json()["current"] == "ready"
    assert (await market.set_status(oid, {"status": "nonsense"})).status_code == 400
    assert (await market.set_status(oid, {"status": "ready", "role": "system"})).status_code == 400
    assert (await market.set_status(oid + 1000, {"status": "ready"})).status_code == 404
    # The customer (WebApp) cannot act for the store.
    response = await market.set_status(oid, {"status": "completed"}, market.webapp())
    assert response.status_code == 409
    assert (await market.set_status(oid, {"status": "completed"})).status_code == 200

    history = await market.h.client.get(f"{market.base}/orders/{oid}/history", headers=market.api())
    assert [(h["from_status"], h["to_status"], h["role"]) for h in history.json()] == [
        (None, "pending", "customer"),
        ("pending", "preparing", "partner"),
        ("preparing", "ready", "admin"),
        ("ready", "completed", "admin"),
    ]
    assert history.json()[1]["reason"] == "on it" and history.json()[1]["actor_id"] == PARTNER_A
    # The customer heard of each change, with the reason.
    texts = [
        c.params["text"]
        for c in bot_api.calls("sendMessage", bot_id=market.bot_id, chat_id=CUSTOMER)
    ]
    assert f"Order #{oid} (Bakery): being prepared\nReason: on it" in texts
    assert f"Order #{oid} (Bakery): completed" in texts


async def test_concurrent_conflicting_changes_one_wins(market):
    orders = [await market.pickup_order() for _ in range(8)]
    for order in orders:
        accept, reject = await asyncio.gather(
            market.set_status(order["id"], {"status": "preparing"}),
            market.set_status(order["id"], {"status": "rejected"}),
        )
        codes = sorted([accept.status_code, reject.status_code])
        assert codes == [200, 409], (accept.text, reject.text)
        loser = accept if accept.status_code == 409 else reject
        winner = reject if loser is accept else accept
        assert loser.json()["current"] == winner.json()["status"]
    history = await market.table("order_history", "id")
    assert len(history) == 16  # created + exactly one change per order
    rows = await market.table("orders")
    assert all(r["status"] in ("preparing", "rejected") for r in rows)


async def test_webapp_customer_sees_only_own_orders_and_cancels(market):
    mine = await market.pickup_order(CUSTOMER)
    theirs = await market.pickup_order(OTHER_CUSTOMER)
    listing = await market.h.client.get(f"{market.base}/orders/my", headers=market.webapp(CUSTOMER))
    assert [o["id"] for o in listing.json()] == [mine["id"]]
    assert (
        await market.h.client.get(
            f"{market.base}/orders/{theirs['id']}", headers=market.webapp(CUSTOMER)
        )
    ).status_code == 404
    assert (
        await market.set_status(theirs["id"], {"status": "cancelled"}, market.webapp(CUSTOMER))
    ).status_code == 404
    assert (
        await market.set_status(
            mine["id"], {"status": "cancelled", "role": "admin"}, market.webapp(CUSTOMER)
        )
    ).status_code == 403
    response = await market.set_status(
        mine["id"], {"status": "cancelled", "reason": "changed my mind"}, market.webapp(CUSTOMER)
    )
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    by_status = await market.h.client.get(
        f"{market.base}/orders",
        params={"store": "bakery", "status": "pending"},
        headers=market.api(),
    )
    assert [o["id"] for o in by_status.json()] == [theirs["id"]]
    assert (
        await market.h.client.get(
            f"{market.base}/orders", params={"status": "lost"}, headers=market.api()
        )
    ).status_code == 400
    assert (
        await market.h.client.get(f"{market.base}/orders", headers=market.webapp())
    ).status_code == 401


async def test_events_carry_dashboard_fields(market):
    published = []
    tenant = market.tenant
    original = tenant.publish

    async def record(name, payload, **options):
        published.append((name, payload))
        return await original(name, payload, **options)

    tenant.publish = record
    order = await market.pickup_order()
    await market.set_status(order["id"], {"status": "rejected", "reason": "out of stock"})
    assert [name for name, _ in published] == [
        "orders.created",
        "orders.status_changed",
        "orders.cancelled",
    ]
    created = published[0][1]
    assert created["order_id"] == order["id"] and created["store_name"] == "Bakery"
    assert (created["customer_name"], created["total"], created["currency"], created["type"]) == (
        "Anna",
        24000,
        "RUB",
        "pickup",
    )
    assert created["items"] == [
        {
            "item_id": order["items"][0]["item_id"],
            "name": "Baguette",
            "quantity": 2,
            "unit_price": 12000,
        }
    ]
    changed = published[2][1]
    assert (changed["status"], changed["previous_status"], changed["reason"]) == (
        "rejected",
        "pending",
        "out of stock",
    )


async def test_catalog_crud_and_seeding_keeps_api_edits(market):
    api = market.api()
    ids = await market.item_ids()
    base = market.base
    category = await market.h.client.post(
        f"{base}/categories",
        json={"id": "cakes", "store_id": "bakery", "name": "Cakes"},
        headers=api,
    )
    assert category.status_code == 201, category.text
    assert (
        await market.h.client.post(
            f"{base}/categories",
            json={"id": "cakes", "store_id": "bakery", "name": "X"},
            headers=api,
        )
    ).status_code == 400
    item = await market.h.client.post(
        f"{base}/items",
        json={"category_id": "cakes", "sku": "napoleon", "name": "Napoleon", "price": 50000},
        headers=api,
    )
    assert item.status_code == 201, item.text
    assert item.json()["store_id"] == "bakery"
    assert (
        await market.h.client.post(
            f"{base}/items",
            json={"category_id": "cakes", "sku": "x", "name": "X", "price": -1},
            headers=api,
        )
    ).status_code == 400
    assert (
        await market.h.client.post(
            f"{base}/items",
            json={"category_id": "nope", "sku": "x", "name": "X", "price": 1},
            headers=api,
        )
    ).status_code == 400
    assert (
        await market.h.client.post(
            f"{base}/items",
            json={"category_id": "cakes", "sku": "x", "name": "X", "price": 1},
            headers=market.webapp(),
        )
    ).status_code == 401
    # Edit a seeded item and archive another, then restart: seeding must not undo either.
    patched = await market.h.client.patch(
        f"{base}/items/{ids['baguette']}", json={"price": 13000}, headers=api
    )
    assert patched.status_code == 200 and patched.json()["price"] == 13000
    assert (
        await market.h.client.patch(
            f"{base}/items/{ids['baguette']}", json={"category_id": "bouquets"}, headers=api
        )
    ).status_code == 400
    assert (
        await market.h.client.delete(f"{base}/items/{ids['rye']}", headers=api)
    ).status_code == 204
    assert (
        await market.h.client.delete(f"{base}/items/{ids['rye']}", headers=api)
    ).status_code == 404
    await market.h.stop()
    await market.h.start()
    await market.h.wait_state(market.id, "running")
    catalog = await market.h.client.get(
        f"{base}/catalog", params={"store": "bakery"}, headers=market.webapp()
    )
    [bakery] = catalog.json()
    items = {i["sku"]: i["price"] for c in bakery["categories"] for i in c["items"]}
    assert items == {"baguette": 13000, "croissant": 15000, "napoleon": 50000}
    assert (
        await market.h.client.get(f"{base}/catalog", params={"store": "nope"}, headers=api)
    ).status_code == 404
    # The next order is priced at the edited price.
    order = await market.pickup_order()
    assert order["total"] == 26000


async def test_tenant_without_orders_has_no_routes_or_commands(tenantry, updates, bot_api):
    plain = tenantry.add_tenant("plain")
    tenantry.add_tenant("shop", features={"orders": {}})
    await tenantry.start()
    await tenantry.wait_state("plain", "running")
    response = await tenantry.client.get(
        "/api/tenants/plain/orders/catalog", headers=tenantry.api_headers("plain")
    )
    assert response.status_code == 404 and "does not enable 'orders'" in response.json()["detail"]
    assert (
        await tenantry.client.get(
            "/api/tenants/shop/orders/catalog", headers=tenantry.api_headers("shop")
        )
    ).json() == []
    bot_id = int(plain["bot"]["token"].split(":")[0])
    await bot_api.wait_for("setMyCommands", bot_id=bot_id)
    [commands] = bot_api.calls("setMyCommands", bot_id=bot_id)
    assert [c["command"] for c in commands.params["commands"]] == ["start", "help"]
    await tenantry.post_update("plain", updates.command("menu", user_id=CUSTOMER))
    await tenantry.post_update("plain", updates.command("help", user_id=CUSTOMER))
    [reply] = bot_api.calls("sendMessage", bot_id=bot_id)
    assert "/menu" not in reply.params["text"]
