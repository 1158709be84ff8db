"""Redis restarted under a runtime's open sockets: live frames resume without a runtime restart.

The runtime runs on a Redis of this test alone (tests/_failover_storage_servers.py,
with its append-only file, as production should run it), so stopping it
disturbs no other test. The hub's pub/sub listener loses its connection and
reconnects; the topic streams and the consumer groups survive in the AOF; a
socket open across the outage gets every order made after it, in order and
once, through the live path (sooner than the periodic heal could bring it),
and a socket opened after the restart does too.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from _failover_storage_servers import REDIS_SERVER, PrivateRedis
from _realtime_support import add_market, assert_increasing, follow, item_ids, key_headers

from core.testing.plugin import TenantryHarness
from plugins.realtime.hub import HEAL_SECONDS

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")

LIVE_SECONDS = HEAL_SECONDS - 1
"""A frame within this long of its create came live: a heal brings it only after a heal round."""


async def _create_order_when_served(harness, key: str, item_id: int, timeout: float = 15.0) -> int:
    """POST an order until the runtime serves it (503 while Redis comes back); its id."""
    body = {"store_id": "bakery", "type": "pickup", "items": [{"item_id": item_id, "quantity": 1}],
            "phone": "+79990001122", "customer_id": 4242, "customer_name": "Anna"}  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        response = await harness.client.post(
            "/api/tenants/market/orders/orders", json=body, headers=key_headers(key)
        )
        if response.status_code == 201:
            return response.json()["id"]
        assert response.status_code == 503, response.text  # storage unavailable, nothing else
        assert time.monotonic() < deadline, "orders not served again after Redis came back"
        await asyncio.sleep(0.2)


async def test_sockets_get_every_order_live_after_redis_restarts(tmp_path, tenantry_database_url,
                                                                 bot_api):  # fmt: skip
    (tmp_path / "redis").mkdir()
    redis = PrivateRedis(tmp_path / "redis")
    await asyncio.to_thread(redis.start)
    harness = TenantryHarness(tmp_path, tenantry_database_url, redis.url, bot_api)
    try:
        config = add_market(harness)
        await harness.start(watch=False)
        item = (await item_ids(harness, config))["baguette"]
        key = harness.api_key("market")
        across = await follow(harness.url, "market", {"X-API-Key": key}, {"orders:bakery": None})
        first = await _create_order_when_served(harness, key, item)
        await across.wait_events("orders:bakery", 1)

        await asyncio.to_thread(redis.stop)  # SIGTERM: the AOF is written, the server exits
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis.start)

        after = [await _create_order_when_served(harness, key, item) for _ in range(2)]
        made_at = time.monotonic()
        frames = await across.wait_events("orders:bakery", 3, timeout=30)
        assert time.monotonic() - made_at < LIVE_SECONDS, "frames came by a heal, not live"
        assert [f["data"]["order_id"] for f in frames] == [first, *after]
        assert_increasing(frames)
        assert across.closed_at is None, f"socket closed with {across.close_code}"

        # A socket opened after the restart (a new ticket in the new Redis) gets live frames.
        later = await follow(harness.url, "market", {"X-API-Key": key}, {"orders:bakery": None})
        try:
            last = await _create_order_when_served(harness, key, item)
            [frame] = await later.wait_events("orders:bakery", 1, timeout=LIVE_SECONDS)
            assert frame["data"]["order_id"] == last
            assert [f["data"]["order_id"] for f in await across.wait_events("orders:bakery", 4)] == [
                first, *after, last
            ]  # fmt: skip
        finally:
            await later.close()
        await across.close()
    finally:
        try:
            await harness.stop()
            await harness.cleanup()
        finally:
            redis.kill()  # also when the harness fails to stop: no redis-server outlives the test
