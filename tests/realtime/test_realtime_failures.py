"""Pool pressure and lost live messages: no connection misses a frame, none stays open without them.

docs/plugins/realtime.md, "Failures": the connections of a runtime read the
topic streams a bounded number at a time (so many of them subscribing at
once do not take every connection of the runtime's shared Redis pool), and
an entry whose live message never came is read from the stream within a few
seconds, not at the next ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import _flood_plugin
from _realtime_support import (
    add_market,
    assert_increasing,
    follow,
    key_headers,
    open_socket,
    ticket,
)
from redis.exceptions import MaxConnectionsError

from core.events.model import DomainEvent
from plugins.realtime.feed import Feed
from plugins.realtime.hub import HEAL_SECONDS, STREAM_READS

SOCKETS = 60
HISTORY = 40
LIVE = 10


async def _publish(tenant, first: int, count: int) -> list[str]:
    async with tenant.db.transaction() as conn:
        return [
            (await tenant.publish("flood.tick", {"n": n}, conn=conn)).id
            for n in range(first, first + count)
        ]


async def _take_every_connection(pool) -> list:
    """Take every idle connection of ``pool`` and allow no new one: each read then fails."""
    pool.max_connections = len(pool._in_use_connections) + len(pool._available_connections)
    held = []
    with contextlib.suppress(MaxConnectionsError):
        while True:
            held.append(await pool.get_connection())
    return held


async def test_many_sockets_catching_up_at_once_do_not_exhaust_a_small_redis_pool(tenantry):
    # queue_size 16: each catch-up of 39 events is three stream reads.
    add_market(tenantry, realtime={"queue_size": 16}, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    tenant = tenantry.runtime.registry.get("market")
    admin = key_headers(tenantry.api_key("market"))

    reference = await follow(tenantry.url, "market", admin, {"flood": None})
    published = await _publish(tenant, 0, HISTORY)
    await reference.wait_events("flood", HISTORY, timeout=30)
    cursor = reference.events("flood")[0]["id"]

    # Tickets and sockets one by one: the pressure to test is the subscriptions' reads.
    tickets = [(await ticket(tenantry.url, "market", admin))["ticket"] for _ in range(SOCKETS)]
    sockets = [await open_socket(tenantry.url, "market", t, keep_data=False) for t in tickets]
    pool = tenant.redis.connection_pool
    capped_at = pool.max_connections
    # redis-py raises MaxConnectionsError past max_connections in use; leave the
    # runtime room for its own reads (event consumers, relay) and the realtime
    # plugin's bound, well under one read per socket.
    pool.max_connections = len(pool._in_use_connections) + STREAM_READS + 6
    try:
        await asyncio.gather(*(s.subscribe({"flood": cursor}) for s in sockets))
        published += await _publish(tenant, HISTORY, LIVE)
        expected = published[1:]
        for socket in sockets:
            await socket.wait(
                lambda s=socket: len(s.events("flood")) >= len(expected) or s.closed_at is not None,
                timeout=30,
                what="every event after the cursor",
            )  # fmt: skip
        for socket in sockets:
            assert socket.close_code is None, f"closed with {socket.close_code}"
            assert [f["event_id"] for f in socket.events("flood")] == expected
            assert_increasing(socket.events("flood"))
            assert not [f for f in socket.frames if f["type"] == "reset"]
    finally:
        pool.max_connections = capped_at
        for socket in [reference, *sockets]:
            await socket.close()


async def test_an_entry_whose_live_message_never_came_arrives_within_seconds(tenantry):
    # ping_seconds 30: before, only the next ping's stream read found such an entry.
    add_market(tenantry, realtime={"ping_seconds": 30}, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    tenant = tenantry.runtime.registry.get("market")
    admin = key_headers(tenantry.api_key("market"))
    settings = tenant.settings_for("realtime")

    watchers = [await follow(tenantry.url, "market", admin, {"flood": None}) for _ in range(3)]
    try:
        await _publish(tenant, 0, 1)
        for socket in watchers:
            await socket.wait_events("flood", 1)
        # Appended and never published, as by a runtime that died between the two
        # steps of on_event (its redelivery would publish it, maybe much later).
        feed = Feed(tenant, settings.history_count, settings.history_seconds)
        event = DomainEvent("flood.tick", {"n": 1}, tenant.id, id=uuid.uuid4().hex)
        appended_at = time.monotonic()
        appended = await feed.append("flood", event)
        assert appended is not None and appended[1]
        for socket in watchers:
            frames = await socket.wait_events("flood", 2, timeout=2 * HEAL_SECONDS + 5)
            assert [f["data"]["n"] for f in frames] == [0, 1]
            assert frames[1]["id"] == appended[0].id
        took = time.monotonic() - appended_at
        assert took < 2 * HEAL_SECONDS + 3, f"{took:.1f} s"
        # Live delivery goes on after it, on the chain.
        await _publish(tenant, 2, 1)
        for socket in watchers:
            frames = await socket.wait_events("flood", 3)
            assert [f["data"]["n"] for f in frames] == [0, 1, 2]
            assert_increasing(frames)
    finally:
        for socket in watchers:
            await socket.close()


async def test_a_socket_whose_reads_keep_failing_is_closed_and_catches_up_on_reconnect(tenantry):
    add_market(tenantry, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    tenant = tenantry.runtime.registry.get("market")
    admin = key_headers(tenantry.api_key("market"))

    first = await follow(tenantry.url, "market", admin, {"flood": None})
    published = await _publish(tenant, 0, 5)
    await first.wait_events("flood", 5)
    cursor = first.events("flood")[0]["id"]
    pool = tenant.redis.connection_pool
    capped_at = pool.max_connections
    held = await _take_every_connection(pool)
    try:
        started = time.monotonic()
        await first.send({"type": "subscribe", "topics": {"flood": cursor}})
        # Retried for about 3 s, then closed: the socket is not left open without frames.
        assert await first.wait_closed(timeout=15) == 1011
        assert time.monotonic() - started >= 2.5
    finally:
        pool.max_connections = capped_at
        for connection in held:
            await pool.release(connection)
    again = await follow(tenantry.url, "market", admin, {"flood": cursor})
    try:
        frames = await again.wait_events("flood", 4)
        assert [f["event_id"] for f in frames] == published[1:]
    finally:
        await again.close()
        await first.close()
