"""kill -9 of the runtime between an order's commit and its push: the frame still arrives, once.

The runtime that dies runs in a process of its own (tests/realtime/realtime_runtime.py,
the pattern of tests/test_core_events_crash.py); the one that takes over is
the harness's, started afterwards on the same database, Redis, control
schema and queue. To have the process die after the commit and before the
push, its realtime consumer is first given a backlog: ``flood`` events
committed just before the order, so the order's event waits behind them
(in the outbox or the stream) when SIGKILL comes.
"""

from __future__ import annotations

import _flood_plugin
import httpx
from _realtime_process import RuntimeProcess
from _realtime_support import (
    add_market,
    assert_increasing,
    create_order,
    follow,
    insert_outbox_events,
    item_ids,
    key_headers,
    partner_key,
)


async def test_kill_9_between_commit_and_push_still_delivers_once(tenantry):
    config = add_market(tenantry, features={"flood": {}})
    schema = config["storage"]["schema"]
    admin_key = tenantry.api_key("market")
    panel = key_headers(partner_key(tenantry, "market", "bakery"))
    first = RuntimeProcess(
        tenantry, {"TENANTRY_EVENTS_CLAIM_IDLE_SECONDS": "1"}, name=f"a-{tenantry.run_id}"
    )
    try:
        await first.start()
        items = await item_ids(tenantry, config)
        on_first = await follow(first.url, "market", panel, {"orders:bakery": None})
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            await create_order(http, "market", admin_key, items)
            [seen] = await on_first.wait_events("orders:bakery", 1)
            backlog = [("flood.tick", {"n": n, "pad": "x" * 200}) for n in range(800)]
            await insert_outbox_events(tenantry.database_url, schema, "market", backlog)
            order = await create_order(http, "market", admin_key, items)  # committed: 201
        await first.kill()
        pushed_before = [f for f in on_first.events() if f["data"]["order_id"] == order["id"]]
        assert pushed_before == [], "the backlog did not hold the push back: nothing was tested"
        await on_first.wait_closed()

        # Another runtime starts; the panel reconnects to it with its cursor.
        await tenantry.start(
            watch=False, plugins=[("flood", _flood_plugin)], events_claim_idle_seconds=1
        )
        back = await follow(tenantry.url, "market", panel, {"orders:bakery": seen["id"]})
        try:
            [replayed] = await back.wait_events("orders:bakery", 1, timeout=30)
            assert replayed["data"]["order_id"] == order["id"]
            live = await create_order(tenantry.client, "market", admin_key, items)
            frames = await back.wait_events("orders:bakery", 2)
            assert [f["data"]["order_id"] for f in frames] == [order["id"], live["id"]]
            assert_increasing([seen, *frames])
            assert not [f for f in back.frames if f["type"] == "reset"]
        finally:
            await back.close()
    finally:
        await first.kill()
