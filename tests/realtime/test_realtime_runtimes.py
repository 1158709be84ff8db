"""Two runtimes on one database and Redis: any runtime serves any connection, a restart loses nothing.

As in tests/test_core_events.py, a second :class:`TenantryHarness` writes the
same tenant file and shares the first one's ``control_schema`` and
``queue_name`` (so the event streams and job queue too).
"""

from __future__ import annotations

import yaml
from _realtime_support import (
    add_market,
    assert_increasing,
    create_order,
    follow,
    item_ids,
    key_headers,
    open_socket,
    partner_key,
    ticket,
)

from core.testing.plugin import TenantryHarness


async def _second_runtime(tenantry, config, tmp_path, database_url, redis_url, bot_api):
    (tmp_path / "b").mkdir()
    other = TenantryHarness(tmp_path / "b", database_url, redis_url, bot_api)
    other.write_tenant(config["id"], yaml.safe_dump(config, sort_keys=False))
    return other


async def test_an_order_created_on_runtime_a_reaches_a_partner_connected_to_runtime_b(
    tenantry, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api
):
    config = add_market(tenantry)
    other = await _second_runtime(tenantry, config, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api)  # fmt: skip
    shared = {"control_schema": tenantry.control_schema, "queue_name": f"q-{tenantry.run_id}"}
    try:
        await tenantry.start(watch=False, **shared)
        # B consumes no events: whatever reaches its client came from A through Redis.
        await other.start(watch=False, run_events=False, **shared)
        items = await item_ids(tenantry, config)
        admin_key = tenantry.api_key("market")
        panel = key_headers(partner_key(tenantry, "market", "bakery"))

        # A ticket from A opens a socket on B: any runtime behind the balancer will do.
        body = await ticket(tenantry.url, "market", panel)
        on_b = await open_socket(other.url, "market", body["ticket"])
        try:
            [answer] = await on_b.subscribe({"orders:bakery": None})
            assert answer["type"] == "subscribed"
            created = [
                await create_order(tenantry.client, "market", admin_key, items) for _ in range(3)
            ]
            frames = await on_b.wait_events("orders:bakery", 3)
            assert [f["data"]["order_id"] for f in frames] == [o["id"] for o in created]
            assert_increasing(frames)
            assert other.runtime.events.consumers.handled == 0
        finally:
            await on_b.close()
    finally:
        await other.stop()


async def test_a_restart_of_the_clients_runtime_loses_nothing(
    tenantry, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api
):
    config = add_market(tenantry)
    other = await _second_runtime(tenantry, config, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api)  # fmt: skip
    shared = {"control_schema": tenantry.control_schema, "queue_name": f"q-{tenantry.run_id}"}
    try:
        await tenantry.start(watch=False, **shared)
        await other.start(watch=False, **shared)
        items = await item_ids(tenantry, config)
        admin_key = tenantry.api_key("market")
        panel = key_headers(partner_key(tenantry, "market", "bakery"))

        on_a = await follow(tenantry.url, "market", panel, {"orders:bakery": None})
        one = await create_order(other.client, "market", admin_key, items)
        [first] = await on_a.wait_events("orders:bakery", 1)
        assert first["data"]["order_id"] == one["id"]

        await tenantry.stop()  # the runtime the panel is connected to goes away
        await on_a.wait_closed()
        missed = [await create_order(other.client, "market", admin_key, items) for _ in range(2)]
        await tenantry.start(watch=False, **shared)

        # The panel comes back to the restarted runtime with its cursor.
        back = await follow(tenantry.url, "market", panel, {"orders:bakery": first["id"]})
        try:
            replayed = await back.wait_events("orders:bakery", 2)
            live = await create_order(tenantry.client, "market", admin_key, items)
            frames = await back.wait_events("orders:bakery", 3)
            assert [f["data"]["order_id"] for f in frames] == [
                *(o["id"] for o in missed),
                live["id"],
            ]
            assert frames[:2] == replayed[:2]
            assert_increasing([first, *frames])
            assert not [f for f in back.frames if f["type"] == "reset"]
        finally:
            await back.close()
    finally:
        await other.stop()


async def test_one_tenants_topic_never_reaches_another_tenants_subscriber(tenantry):
    """Two tenants with a store of the same name: ``orders:bakery`` is two topics."""
    market = add_market(tenantry, "market")
    bazaar = add_market(tenantry, "bazaar")
    await tenantry.start(watch=False)
    market_items = await item_ids(tenantry, market)
    bazaar_items = await item_ids(tenantry, bazaar)

    watchers = [
        await follow(tenantry.url, "bazaar", key_headers(tenantry.api_key("bazaar")), {"orders": None, "orders:bakery": None}),
        await follow(tenantry.url, "bazaar", key_headers(partner_key(tenantry, "bazaar", "bakery")), {"orders:bakery": None}),
    ]  # fmt: skip
    try:
        # Names of the other tenant's topics, channels or keys are no topics here.
        probe = watchers[0]
        for name in ("market:orders:bakery", f"t{tenantry.run_id}:market:orders:bakery",
                     "../market/orders:bakery", "orders:bakery:market", "*"):  # fmt: skip
            [answer] = await probe.subscribe({name: None})
            assert answer["type"] == "error" and answer["code"] in (
                "realtime.unknown_topic",
                "realtime.topic_forbidden",
            ), answer
        for _ in range(3):
            await create_order(tenantry.client, "market", tenantry.api_key("market"), market_items, customer_name="Marketa")  # fmt: skip
        # Order ids are per schema (both tenants have an order 1): tell them by the name.
        await create_order(tenantry.client, "bazaar", tenantry.api_key("bazaar"), bazaar_items, customer_name="Bazil")  # fmt: skip
        for socket, expected in zip(watchers, (2, 1), strict=True):
            await socket.wait(
                lambda s=socket, n=expected: sum(f["data"]["customer_name"] == "Bazil" for f in s.events()) == n,
                what="bazaar's own order",
            )  # fmt: skip
        # market's orders were committed first; none of them reached bazaar's screens.
        assert [f["data"]["customer_name"] for f in watchers[0].events()] == ["Bazil", "Bazil"]
        assert [f["data"]["customer_name"] for f in watchers[1].events()] == ["Bazil"]
    finally:
        for socket in watchers:
            await socket.close()
