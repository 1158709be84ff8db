"""Audiences from other plugins' segments: booking (visited, upcoming) and orders (store, recent)."""

from __future__ import annotations

from _broadcast_support import ADMIN, Shop, buttons, wait_text

BOOKING = {
    "kind": "tables",
    "tables": [{"id": "t1", "seats": 4}],
    "opening_hours": dict.fromkeys(
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "00:00-24:00"
    ),
}
ORDERS = {
    "stores": [
        {"id": "bakery", "name": "Bakery", "pickup": True},
        {"id": "flowers", "name": "Flowers", "pickup": True},
    ]
}


async def _mall(tenantry) -> Shop:
    config = tenantry.add_tenant(
        "mall",
        features={"booking": BOOKING, "orders": ORDERS, "broadcast": {"rate_per_second": 30}},
    )
    await tenantry.start()
    shop = Shop(tenantry, config)
    await shop.add_subscribers([7001, 7002, 7003, 7004, 7101, 7102, 7999])
    for user_id, days, status in (
        (7001, -10, "completed"),  # visited in the last 30 days
        (7002, -60, "completed"),  # visited in the last 90, not 30
        (7003, 3, "confirmed"),  # upcoming
        (7004, -5, "cancelled"),  # released: not a visit
        (7005, -2, "completed"),  # visited, but not a subscriber
    ):
        await shop.sql(
            "INSERT INTO {s}.bookings (status, user_id, customer_name, phone, party_size,"
            " starts_at, ends_at, source) VALUES ($1, $2, 'Guest', '+10000000000', 2,"
            " now() + make_interval(days => $3), now() + make_interval(days => $3, hours => 2), 'bot')",
            status,
            user_id,
            days,
        )
    for user_id, store, days in ((7101, "bakery", 0), (7102, "flowers", -40)):
        await shop.sql(
            "INSERT INTO {s}.orders (store_id, customer_id, type, status, subtotal, total, currency,"
            " created_at) VALUES ($1, $2, 'pickup', 'completed', 100, 100, 'RUB',"
            " now() + make_interval(days => $3))",
            store,
            user_id,
            days,
        )
    return shop


async def _count(shop: Shop, audience: dict) -> int:
    response = await shop.h.client.post(
        shop.url("/audiences/count"), json=audience, headers=shop.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["count"]


async def test_segments_from_booking_and_orders(tenantry, updates, bot_api):
    shop = await _mall(tenantry)
    assert await _count(shop, {"kind": "all"}) == 7
    visited = {"kind": "segment", "segment": "booking.visited"}
    assert await _count(shop, visited) == 1
    assert await _count(shop, {**visited, "params": {"days": 90}}) == 2
    assert await _count(shop, {"kind": "segment", "segment": "booking.upcoming"}) == 1
    store = {"kind": "segment", "segment": "orders.store_customers"}
    assert await _count(shop, {**store, "params": {"store": "bakery"}}) == 1
    assert (
        await _count(shop, {"kind": "segment", "segment": "orders.recent", "params": {"days": 30}})
        == 1
    )
    assert (
        await _count(shop, {"kind": "segment", "segment": "orders.recent", "params": {"days": 60}})
        == 2
    )

    bad = await shop.h.client.post(
        shop.url("/audiences/count"),
        json={**visited, "params": {"days": "many"}},
        headers=shop.headers,
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "broadcast.bad_segment_params")
    no_store = await shop.h.client.post(
        shop.url("/audiences/count"), json=store, headers=shop.headers
    )
    assert (no_store.status_code, no_store.json()["code"]) == (400, "broadcast.bad_segment_params")

    stats = (await shop.h.client.get(shop.url("/subscribers/stats"), headers=shop.headers)).json()
    titles = {(s["segment"], s["title"]): s["count"] for s in stats["segments"]}
    assert titles[("booking.visited", "Guests of the last 30 days")] == 1
    assert titles[("booking.visited", "Guests of the last 90 days")] == 2
    assert titles[("orders.store_customers", "Customers of Flowers")] == 1

    campaign = await shop.create(audience={**store, "params": {"store": "bakery"}})
    assert campaign["total"] == 1
    await shop.wait_status(campaign["id"], "done")
    assert [r["chat_id"] for r in await shop.deliveries(campaign["id"])] == [7101]

    # The bot offers the same audiences, with their counts.
    await shop.h.post_update(shop.id, updates.command("broadcast", user_id=ADMIN))
    menu = await wait_text(bot_api, ADMIN, "Broadcast to subscribers (7)")
    labels = [text for text, _ in buttons(menu)]
    assert "Guests with an upcoming booking (1)" in labels
    assert "Customers of Bakery (1)" in labels
    assert "Ordered in the last 30 days (1)" in labels
