"""Who may follow what: partner keys see their own store, admins everything, customers nothing.

docs/plugins/realtime.md, "Topics" and "1. Get a ticket"; the keys are the
scoped API keys of docs/hooks.md ("Scoped API keys").
"""

from __future__ import annotations

from _realtime_support import (
    CUSTOMER,
    FLORIST,
    PARTNER_BAKERY,
    add_market,
    create_order,
    follow,
    item_ids,
    key_headers,
    open_socket,
    partner_key,
    ticket,
    ticket_response,
    webapp_headers,
)


async def test_a_bakery_partner_key_follows_only_the_bakery(tenantry):
    config = add_market(tenantry)
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    admin_key = tenantry.api_key("market")

    body = await ticket(
        tenantry.url, "market", key_headers(partner_key(tenantry, "market", "bakery"))
    )
    assert body["topics"] == ["orders:bakery"]
    assert body["ticket"].startswith("rt_") and body["expires_in"] == 30
    bakery = await open_socket(tenantry.url, "market", body["ticket"])
    try:
        answers = await bakery.subscribe(
            {"orders:flowers": None, "orders": None, "orders:bakery": None}
        )
        flowers_answer, all_answer, bakery_answer = answers
        assert (flowers_answer["type"], flowers_answer["code"]) == (
            "error",
            "realtime.topic_forbidden",
        )
        assert (all_answer["type"], all_answer["code"]) == ("error", "realtime.topic_forbidden")
        assert bakery_answer["type"] == "subscribed"
        # A topic no enabled plugin has is unknown, not forbidden.
        [unknown] = await bakery.subscribe({"bookings": None})
        assert (unknown["type"], unknown["code"]) == ("error", "realtime.unknown_topic")

        flowers_order = await create_order(tenantry.client, "market", admin_key, items, store="flowers", sku="tulips", quantity=1)  # fmt: skip
        bakery_order = await create_order(tenantry.client, "market", admin_key, items)
        # The bakery order was committed after the flowers one: once it is here,
        # a flowers frame would have been too.
        [frame] = await bakery.wait_events("orders:bakery", 1)
        assert frame["data"]["order_id"] == bakery_order["id"]
        # Asking again after the error does not open it either.
        [again] = await bakery.subscribe({"orders:flowers": None})
        assert again["code"] == "realtime.topic_forbidden"
        await create_order(tenantry.client, "market", admin_key, items, store="flowers", sku="tulips", quantity=1)  # fmt: skip
        await create_order(tenantry.client, "market", admin_key, items)
        await bakery.wait_events("orders:bakery", 2)
        assert [f["topic"] for f in bakery.events()] == ["orders:bakery", "orders:bakery"]
        assert all(f["data"]["store_id"] == "bakery" for f in bakery.events())
        assert flowers_order["id"] not in [f["data"]["order_id"] for f in bakery.events()]
    finally:
        await bakery.close()


async def test_an_admin_sees_every_store_and_partners_in_the_webapp_their_own(tenantry):
    config = add_market(tenantry)
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    admin_key = tenantry.api_key("market")

    body = await ticket(tenantry.url, "market", key_headers(admin_key))
    assert body["topics"] == ["orders", "orders:bakery", "orders:flowers"]
    # A partner opening the WebApp is a partner of its stores (orders: stores[].partners).
    baker = await ticket(tenantry.url, "market", webapp_headers(config, PARTNER_BAKERY, "Ivan"))
    florist = await ticket(tenantry.url, "market", webapp_headers(config, FLORIST, "Vera"))
    assert (baker["topics"], florist["topics"]) == (["orders:bakery"], ["orders:flowers"])

    admin = await open_socket(tenantry.url, "market", body["ticket"])
    try:
        answers = await admin.subscribe({"orders": None, "orders:flowers": None})
        assert [a["type"] for a in answers] == ["subscribed", "subscribed"]
        bakery_order = await create_order(tenantry.client, "market", admin_key, items)
        flowers_order = await create_order(tenantry.client, "market", admin_key, items, store="flowers", sku="tulips", quantity=1)  # fmt: skip
        every = await admin.wait_events("orders", 2)
        assert [(f["data"]["order_id"], f["data"]["store_id"]) for f in every] == [
            (bakery_order["id"], "bakery"),
            (flowers_order["id"], "flowers"),
        ]
        [flowers] = await admin.wait_events("orders:flowers", 1)
        assert flowers["event_id"] == every[1]["event_id"]
    finally:
        await admin.close()


async def test_a_customer_and_a_stranger_get_no_ticket(tenantry):
    config = add_market(tenantry)
    await tenantry.start(watch=False)

    customer = await ticket_response(tenantry.url, "market", webapp_headers(config, CUSTOMER))
    assert customer.status_code == 403, customer.text
    assert customer.headers["content-type"] == "application/problem+json"
    assert customer.json()["code"] == "realtime.forbidden"

    nobody = await ticket_response(tenantry.url, "market", {})
    assert nobody.status_code == 401, nobody.text
    wrong = await ticket_response(tenantry.url, "market", key_headers("not-a-key"))
    assert wrong.status_code == 401, wrong.text


async def test_a_partner_ticket_of_one_store_cannot_be_widened_by_reconnecting(tenantry):
    """Subscribing with a cursor of another store's topic is refused like without one."""
    config = add_market(tenantry)
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    admin = await follow(tenantry.url, "market", key_headers(tenantry.api_key("market")), {"orders:flowers": None})  # fmt: skip
    try:
        await create_order(tenantry.client, "market", tenantry.api_key("market"), items, store="flowers", sku="tulips", quantity=1)  # fmt: skip
        [seen] = await admin.wait_events("orders:flowers", 1)
    finally:
        await admin.close()
    florist_cursor = "0-0"
    bakery = await follow(
        tenantry.url, "market", key_headers(partner_key(tenantry, "market", "bakery")), {"orders:bakery": None}
    )  # fmt: skip
    try:
        [refused] = await bakery.subscribe({"orders:flowers": florist_cursor})
        assert refused["code"] == "realtime.topic_forbidden"
        await create_order(tenantry.client, "market", tenantry.api_key("market"), items)
        await bakery.wait_events("orders:bakery", 1)
        assert seen["event_id"] not in [f["event_id"] for f in bakery.events()]
        assert [f["topic"] for f in bakery.events()] == ["orders:bakery"]
    finally:
        await bakery.close()
