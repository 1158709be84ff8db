"""Limits that keep one tenant, user or key from starving the rest: rates and caps.

Rate limits per WebApp user, API key and bot user; caps of active bookings
and orders per customer. The per-tenant database connection cap:
``tests/test_security_limits_connections.py``; the webhook answering
refusals before reading a body, WebApp init-data clock limits and
idempotency keys that a crash cannot lock and that never cross customers:
``tests/test_security_limits_requests.py``. The HTTP server's timeouts and
concurrency limit: ``tests/test_security_http.py``.
"""

from __future__ import annotations

import asyncio

from _security_limits_support import (
    ADMIN,
    ANNA,
    BOOKINGS,
    IVAN,
    SHOP,
    _rye,
    add_restaurant,
    assert_rate_limited,
    at,
    booking_body,
    bot_id,
    future_day,
    schema,
    webapp,
)

# tests/test_security_webapp.py imports ANNA, BOOKINGS, add_restaurant, at,
# booking_body and future_day from this module.


# ---------------------------------------------------------------- rate limits


async def test_webapp_user_flooding_creates_gets_429_while_another_user_books(tenantry):
    config = add_restaurant(
        tenantry,
        limits={"webapp_writes": "3/minute"},
        booking={"max_active_bookings_per_user": 10},
    )
    await tenantry.start()
    day = future_day()
    anna = webapp(config, ANNA)
    times = ["12:00", "13:00", "14:00", "15:00", "16:00"]
    answers = [
        await tenantry.client.post(BOOKINGS, json=booking_body(at(day, hhmm)), headers=anna)
        for hhmm in times
    ]
    assert [a.status_code for a in answers[:3]] == [201, 201, 201], [a.text for a in answers]
    for refused in answers[3:]:
        assert_rate_limited(refused)
    ivan = await tenantry.client.post(
        BOOKINGS,
        json=booking_body(at(day, "12:00"), customer_name="Ivan"),
        headers=webapp(config, IVAN),
    )
    assert ivan.status_code == 201, ivan.text
    # Reads are not writes: Anna still sees her bookings.
    mine = await tenantry.client.get("/api/tenants/filin/booking/my-bookings", headers=anna)
    assert mine.status_code == 200 and len(mine.json()) == 3
    rows = await tenantry.sql(
        f'SELECT user_id, count(*) AS n FROM "{schema(config)}".bookings GROUP BY 1 ORDER BY 1'
    )
    assert rows == [{"user_id": 7001, "n": 3}, {"user_id": 7002, "n": 1}]
    # Every counter lives under the tenant's Redis prefix.
    prefix = config["storage"]["redis_prefix"]
    keys = [k async for k in tenantry.runtime.redis.scan_iter(match=f"{prefix}ratelimit*")]
    assert keys


async def test_api_key_over_its_limit_gets_429(tenantry):
    config = add_restaurant(tenantry, limits={"api_writes": "2/minute"})
    other = add_restaurant(tenantry, "glow", limits={"api_writes": "2/minute"})
    await tenantry.start()
    day = future_day()
    headers = tenantry.api_headers("filin")
    answers = [
        await tenantry.client.post(BOOKINGS, json=booking_body(at(day, hhmm)), headers=headers)
        for hhmm in ("12:00", "13:00", "14:00")
    ]
    assert [a.status_code for a in answers[:2]] == [201, 201], [a.text for a in answers]
    assert_rate_limited(answers[2])
    # A status change is a write too.
    booking_id = answers[0].json()["id"]
    moved = await tenantry.client.post(
        f"{BOOKINGS}/{booking_id}/status", json={"status": "cancelled"}, headers=headers
    )
    assert_rate_limited(moved)
    # Reads of the same key go on, and another tenant's key has its own budget.
    listed = await tenantry.client.get(BOOKINGS, params={"date": day.isoformat()}, headers=headers)
    assert listed.status_code == 200 and len(listed.json()) == 2
    glow = await tenantry.client.post(
        "/api/tenants/glow/booking/bookings",
        json=booking_body(at(day, "12:00")),
        headers=tenantry.api_headers("glow"),
    )
    assert glow.status_code == 201, glow.text
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".bookings') == [
        {"n": 2}
    ]
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(other)}".bookings') == [{"n": 1}]


async def test_bot_user_flooding_a_writing_command_gets_the_polite_message(
    tenantry, updates, bot_api
):
    config = add_restaurant(tenantry, locale="ru", limits={"bot_writes": "2/minute"})
    await tenantry.start()
    day = future_day()
    for hhmm in ("10:00-11:00", "11:00-12:00", "12:00-13:00"):
        response = await tenantry.post_update(
            "filin", updates.command("block", f"{day.isoformat()} {hhmm}", user_id=ADMIN)
        )
        assert response.status_code == 200, response.text
    replies = [c.params["text"] for c in bot_api.calls("sendMessage", bot_id=bot_id(config))]
    assert len(replies) == 3, replies
    assert "Слишком много действий" in replies[2] and "с" in replies[2]
    assert not any("Слишком много" in r for r in replies[:2])
    blocks = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".blocked_slots')
    assert blocks == [{"n": 2}]
    # A customer's Cancel button spends their own budget, not the admin's.
    from plugins.booking import keyboards as kb

    press = updates.callback_query(kb.CancelBooking(booking_id=424242).pack(), user_id=ANNA["id"])
    assert (await tenantry.post_update("filin", press)).status_code == 200
    answers = bot_api.calls("answerCallbackQuery", bot_id=bot_id(config))
    assert len(answers) == 1 and "Слишком много" not in (answers[0].params.get("text") or "")
    [outdated] = bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=ANNA["id"])
    assert "Слишком много" not in outdated.params["text"]


async def test_bot_callback_flood_is_answered_with_an_alert(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, limits={"bot_writes": "1/minute"})
    await tenantry.start()
    from plugins.booking import keyboards as kb

    data = kb.CancelBooking(booking_id=424242).pack()
    for _ in range(2):
        response = await tenantry.post_update(
            "filin", updates.callback_query(data, user_id=ANNA["id"])
        )
        assert response.status_code == 200
    answers = bot_api.calls("answerCallbackQuery", bot_id=bot_id(config))
    assert len(answers) == 2
    assert "too often" not in (answers[0].params.get("text") or "")
    assert "too often" in answers[1].params["text"] and answers[1].params["show_alert"] is True


# ---------------------------------------------------------------- caps per customer


async def test_concurrent_creates_by_one_user_cannot_exceed_the_booking_cap(tenantry):
    config = add_restaurant(tenantry, limits={"webapp_writes": "100/minute"})
    await tenantry.start()
    day = future_day()
    anna = webapp(config, ANNA)
    times = ["12:00", "13:00", "14:00", "15:00", "16:00", "17:00"]
    answers = await asyncio.gather(
        *(
            tenantry.client.post(BOOKINGS, json=booking_body(at(day, hhmm)), headers=anna)
            for hhmm in times
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201, 409, 409, 409, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "booking.too_many_bookings" and "2" in refused["detail"]
    rows = await tenantry.sql(f'SELECT id FROM "{schema(config)}".bookings WHERE user_id = 7001')
    assert len(rows) == 2
    # The cap is per day, and a cancelled booking no longer counts.
    other_day = await tenantry.client.post(
        BOOKINGS, json=booking_body(at(future_day(4), "12:00")), headers=anna
    )
    assert other_day.status_code == 201, other_day.text
    cancelled = await tenantry.client.post(
        f"{BOOKINGS}/{rows[0]['id']}/status", json={"status": "cancelled"}, headers=anna
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await tenantry.client.post(BOOKINGS, json=booking_body(at(day, "18:00")), headers=anna)
    assert again.status_code == 201, again.text
    # Staff bookings through the API key carry no customer and have no cap.
    for hhmm in ("19:00", "20:00", "21:00"):
        staff = await tenantry.client.post(
            BOOKINGS, json=booking_body(at(day, hhmm)), headers=tenantry.api_headers("filin")
        )
        assert staff.status_code == 201, staff.text


async def test_concurrent_orders_by_one_customer_cannot_exceed_the_orders_cap(tenantry):
    config = tenantry.add_tenant("shop", features={"orders": SHOP})
    await tenantry.start()
    rye = await _rye(tenantry, config)
    anna = webapp(config, ANNA)
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "items": [{"item_id": rye}],
        "phone": "+79990001122",
    }
    answers = await asyncio.gather(
        *(
            tenantry.client.post("/api/tenants/shop/orders/orders", json=body, headers=anna)
            for _ in range(5)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409], [
        a.text for a in answers
    ]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "orders.too_many_orders"
    assert "2" in refused["detail"] and "active orders" in refused["detail"]
    # Cancelling one frees a place.
    first = next(a for a in answers if a.status_code == 201).json()
    cancelled = await tenantry.client.post(
        f"/api/tenants/shop/orders/orders/{first['id']}/status",
        json={"status": "cancelled"},
        headers=anna,
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await tenantry.client.post("/api/tenants/shop/orders/orders", json=body, headers=anna)
    assert again.status_code == 201, again.text
    rows = await tenantry.sql(
        f'SELECT id, status FROM "{schema(config)}".orders WHERE customer_id = 7001 ORDER BY id'
    )
    # Which of the two concurrent creates got the lower id is not fixed.
    assert sorted(r["status"] for r in rows) == ["cancelled", "pending", "pending"]
    assert {r["id"]: r["status"] for r in rows}[first["id"]] == "cancelled"


async def test_orders_cap_in_the_bot_is_a_localized_message(tenantry, updates, bot_api):
    config = tenantry.add_tenant(
        "shop", locale="ru", features={"orders": {**SHOP, "max_active_orders_per_customer": 1}}
    )
    await tenantry.start()
    rye = await _rye(tenantry, config)
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "items": [{"item_id": rye}],
        "phone": "+79990001122",
        "customer_id": ANNA["id"],
    }
    created = await tenantry.client.post(
        "/api/tenants/shop/orders/orders", json=body, headers=tenantry.api_headers("shop")
    )
    assert created.status_code == 201, created.text
    user = ANNA["id"]
    steps = [
        updates.callback_query(f"om:a:{rye}", user_id=user),
        updates.callback_query("oc:go", user_id=user),
        updates.contact("+79990001122", user_id=user),
    ]
    for update in steps:
        assert (await tenantry.post_update("shop", update)).status_code == 200
    confirm = updates.callback_query("ck:ok", user_id=user)
    assert (await tenantry.post_update("shop", confirm)).status_code == 200
    [edited] = bot_api.calls("editMessageText", bot_id=bot_id(config))[-1:]
    assert "активных заказов" in edited.params["text"], edited.params["text"]
    rows = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".orders')
    assert rows == [{"n": 1}]
