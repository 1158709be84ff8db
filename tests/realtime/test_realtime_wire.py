"""Event frames written straight to the server's connections (plugins/realtime/_wire.py).

The runtime is served as ``tenantry run`` serves it (uvicorn's websockets-sansio
implementation behind core.http.serving's outer layer), so every session takes
the shared frame's bytes; a real ``websockets`` client parses what arrives.
"""

from __future__ import annotations

from _realtime_support import add_market, create_order, follow, item_ids, partner_key

from plugins.realtime import hub as hub_module


def _sessions() -> list:
    return [
        follower
        for hub in hub_module._HUBS.values()
        for topic in hub._topics.values()
        for follower in topic.followers
    ]


async def test_event_frames_reach_every_socket_through_the_shared_frame_bytes(tenantry):
    config = add_market(tenantry)
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    admin_key = tenantry.api_key("market")
    clients = [
        await follow(tenantry.url, "market", {"X-API-Key": admin_key}, {"orders:bakery": None}),
        await follow(
            tenantry.url,
            "market",
            {"X-API-Key": partner_key(tenantry, "market", "bakery")},
            {"orders:bakery": None},
        ),
    ]
    try:
        sessions = _sessions()
        assert len(sessions) == 2
        # Served like tenantry run: the fast path is taken, not the ASGI fallback.
        assert all(session._wire is not None for session in sessions)
        orders = [await create_order(tenantry.client, "market", admin_key, items) for _ in range(3)]
        received = [await client.wait_events("orders:bakery", 3) for client in clients]
        assert received[0] == received[1]
        assert [f["data"]["order_id"] for f in received[0]] == [o["id"] for o in orders]
        assert all(f["type"] == "event" and f["event"] == "orders.created" for f in received[0])
    finally:
        for client in clients:
            await client.close()


async def test_with_compression_negotiated_frames_go_through_the_asgi_send(tenantry):
    # permessage-deflate compresses per connection: no shared bytes, the ASGI path sends.
    config = add_market(tenantry)
    await tenantry.start(watch=False, http_ws_compression=True)
    items = await item_ids(tenantry, config)
    admin_key = tenantry.api_key("market")
    client = await follow(tenantry.url, "market", {"X-API-Key": admin_key}, {"orders:bakery": None})
    try:
        [session] = _sessions()
        assert session._wire is None
        order = await create_order(tenantry.client, "market", admin_key, items)
        [frame] = await client.wait_events("orders:bakery", 1)
        assert (frame["event"], frame["data"]["order_id"]) == ("orders.created", order["id"])
    finally:
        await client.close()
