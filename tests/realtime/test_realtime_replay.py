"""Reconnecting with a cursor: exactly the missed events, or ``reset`` past the kept history.

docs/plugins/realtime.md, "3. Messages" and "Reconnecting". Orders go through
the orders API; the ``flood`` topic (tests/realtime/_flood_plugin.py) takes
many events at once through ``tenant.publish``, as any plugin publishes.
"""

from __future__ import annotations

import _flood_plugin
from _realtime_support import (
    add_market,
    assert_increasing,
    create_order,
    follow,
    item_ids,
    key_headers,
    partner_key,
    set_order_status,
)


async def test_reconnecting_with_the_cursor_gets_exactly_the_missed_events(tenantry):
    config = add_market(tenantry)
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    admin_key = tenantry.api_key("market")
    panel = key_headers(partner_key(tenantry, "market", "bakery"))

    first = await follow(tenantry.url, "market", panel, {"orders:bakery": None})
    try:
        one = await create_order(tenantry.client, "market", admin_key, items)
        [seen] = await first.wait_events("orders:bakery", 1)
    finally:
        await first.close()
    cursor = seen["id"]

    # While the panel is away: two orders, a status change, and another store's order.
    two = await create_order(tenantry.client, "market", admin_key, items)
    await create_order(tenantry.client, "market", admin_key, items, store="flowers", sku="tulips", quantity=1)  # fmt: skip
    await set_order_status(tenantry.client, "market", admin_key, one["id"], "preparing")
    three = await create_order(tenantry.client, "market", admin_key, items, sku="rye", quantity=3)

    again = await follow(tenantry.url, "market", panel, {"orders:bakery": cursor})
    try:
        [subscribed] = [f for f in again.frames if f["type"] == "subscribed"]
        assert subscribed["cursor"] == cursor
        missed = await again.wait_events("orders:bakery", 3)
        four = await create_order(tenantry.client, "market", admin_key, items)
        frames = await again.wait_events("orders:bakery", 4)
        assert [(f["event"], f["data"]["order_id"]) for f in frames] == [
            ("orders.created", two["id"]),
            ("orders.status_changed", one["id"]),
            ("orders.created", three["id"]),
            ("orders.created", four["id"]),
        ]
        assert missed[:3] == frames[:3]
        assert_increasing([seen, *frames])
        assert seen["event_id"] not in [f["event_id"] for f in frames]
        assert not [f for f in again.frames if f["type"] == "reset"]
    finally:
        await again.close()

    # A cursor at the newest event replays nothing; then live events.
    latest = await follow(tenantry.url, "market", panel, {"orders:bakery": frames[-1]["id"]})
    try:
        five = await create_order(tenantry.client, "market", admin_key, items)
        [only] = await latest.wait_events("orders:bakery", 1)
        assert only["data"]["order_id"] == five["id"]
    finally:
        await latest.close()


async def test_a_cursor_older_than_the_kept_history_gets_reset_then_live_events(tenantry):
    add_market(tenantry, realtime={"history_count": 10}, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    tenant = tenantry.runtime.registry.get("market")
    admin = key_headers(tenantry.api_key("market"))

    first = await follow(tenantry.url, "market", admin, {"flood": None})
    try:
        async with tenant.db.transaction() as conn:
            await tenant.publish("flood.tick", {"n": 0}, conn=conn)
        [seen] = await first.wait_events("flood", 1)
    finally:
        await first.close()
    # Far more than history_count (and than a stream node of 100 entries, the
    # unit in which Redis trims "MAXLEN ~").
    async with tenant.db.transaction() as conn:
        for n in range(1, 251):
            await tenant.publish("flood.tick", {"n": n}, conn=conn)
    assert await tenant.events_delivered(timeout=20)

    again = await follow(tenantry.url, "market", admin, {"flood": seen["id"]})
    try:
        await again.wait(lambda: any(f["type"] == "reset" for f in again.frames), what="reset")
        [reset] = [f for f in again.frames if f["type"] == "reset"]
        assert reset["topic"] == "flood" and reset["reason"]
        async with tenant.db.transaction() as conn:
            await tenant.publish("flood.tick", {"n": 251}, conn=conn)
        await again.wait(
            lambda: any(f["data"]["n"] == 251 for f in again.events("flood")), what="live event"
        )
        # After the reset only live events: none of the 250 the client would have to reload.
        assert [f["data"]["n"] for f in again.events("flood")] == [251]
    finally:
        await again.close()

    # A made-up cursor from before anything kept is past the retention too.
    ancient = await follow(tenantry.url, "market", admin, {"flood": "1000-0"})
    try:
        await ancient.wait(lambda: any(f["type"] == "reset" for f in ancient.frames), what="reset")
        assert ancient.events("flood") == []
    finally:
        await ancient.close()


async def test_bad_messages_get_an_error_frame_and_the_connection_goes_on(tenantry):
    add_market(tenantry, realtime={"max_message_bytes": 2048})
    await tenantry.start(watch=False)
    socket = await follow(tenantry.url, "market", key_headers(tenantry.api_key("market")), {"orders": None})  # fmt: skip
    try:
        for message in (
            "not json",
            '{"type": "unsubscribe-everything"}',
            '["subscribe"]',
            '{"type": "subscribe", "topics": {"orders": "' + "x" * 3000 + '"}}',
        ):
            before = len(socket.frames)
            await socket.send(message)
            await socket.wait(
                lambda b=before: len(socket.frames) > b, what=f"answer to {message[:30]}"
            )
            answer = socket.frames[before]
            assert (answer["type"], answer["code"]) == ("error", "realtime.bad_message"), answer
            assert answer["detail"]
        # Still served: a ping gets a pong.
        await socket.send({"type": "ping"})
        await socket.wait(lambda: socket.frames[-1]["type"] == "pong", what="pong")
        assert socket.close_code is None
    finally:
        await socket.close()
