"""A client that does not read, and one that never answers a ping.

docs/plugins/realtime.md, "3. Messages": a client more than ``queue_size``
frames behind is caught up from the stream (or gets ``reset``) and memory per
connection is bounded; no message for two ``ping_seconds`` closes the socket
with 4408 and releases the connection.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import _flood_plugin
from _realtime_support import (
    Socket,
    add_market,
    assert_increasing,
    follow,
    key_headers,
    open_socket,
    partner_key,
    ticket,
    wait_until,
    ws_url,
)
from websockets.asyncio.client import connect

PAD = 16_000  # characters of padding per event: 600 events are about 9.6 MB of frames


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ProcessLookupError("no VmRSS")


async def _stalled_socket(base_url: str, tenant_id: str, ticket_token: str):
    """A WebSocket whose reader stops after one buffered frame, over a 4 KiB receive window."""
    address = urlsplit(base_url)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (address.hostname, address.port))
    return await connect(
        ws_url(base_url, tenant_id, ticket_token),
        sock=raw,
        max_queue=1,  # websockets stops reading the socket past one unread frame
        compression=None,  # permessage-deflate would shrink the frames to nothing
        ping_interval=None,
        open_timeout=10,
    )


async def _publish(tenant, first: int, count: int) -> list[str]:
    # Random characters: padding that compression cannot shrink.
    pad = base64.b64encode(os.urandom(PAD * 3 // 4)).decode()
    ids = []
    for start in range(first, first + count, 100):
        async with tenant.db.transaction() as conn:
            for n in range(start, min(start + 100, first + count)):
                event = await tenant.publish("flood.tick", {"n": n, "pad": pad}, conn=conn)
                ids.append(event.id)
    return ids


async def test_a_client_that_does_not_read_is_bounded_then_caught_up_or_reset(tenantry):
    add_market(tenantry, realtime={"queue_size": 16}, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    tenant = tenantry.runtime.registry.get("market")
    admin = key_headers(tenantry.api_key("market"))

    body = await ticket(tenantry.url, "market", admin)
    stalled = await _stalled_socket(tenantry.url, "market", body["ticket"])
    await stalled.send(json.dumps({"type": "subscribe", "topics": {"flood": None}}))
    subscribed = json.loads(await stalled.recv())
    assert (subscribed["type"], subscribed["topic"]) == ("subscribed", "flood")
    # A client that reads, next to it: it keeps up whatever the other one does.
    reader = await open_socket(tenantry.url, "market", (await ticket(tenantry.url, "market", admin))["ticket"], keep_data=False)  # fmt: skip
    await reader.subscribe({"flood": None})
    try:
        published = await _publish(tenant, 0, 200)  # warm-up: the server's buffers at their size
        await reader.wait_events("flood", 200, timeout=30)
        # Two floods while the client does not read. With memory bounded per
        # connection the second one finds the process at its size; a queue
        # that kept every frame would grow by each flood's 9.6 MB.
        # Collected before each sample: the runtime shares this process with the
        # test, and garbage waiting for a collection is not what is measured.
        gc.collect()
        sizes = [_rss_bytes()]
        for first in (200, 800):
            published += await _publish(tenant, first, 600)
            await reader.wait_events("flood", first + 600, timeout=60)
            gc.collect()
            sizes.append(_rss_bytes())
        flood_bytes = 600 * PAD
        grown = [(b - a) / 2**20 for a, b in itertools.pairwise(sizes)]
        # Half a flood: allocator slack stays well under it, a queue keeping every frame does not.
        assert sizes[2] - sizes[1] < flood_bytes / 2, f"RSS grew {grown} MiB per {flood_bytes / 2**20:.1f} MiB flood"  # fmt: skip
        assert sizes[2] - sizes[0] < flood_bytes, f"RSS grew {grown} MiB per {flood_bytes / 2**20:.1f} MiB flood"  # fmt: skip
        assert stalled.close_code is None

        # The client reads again: what it missed comes from the stream, or a reset.
        slow = Socket(stalled, keep_data=False)
        published += await _publish(tenant, 1400, 1)

        def caught_up_or_reset() -> bool:
            seen = {f.get("event_id") for f in slow.frames}
            return published[-1] in seen or any(f["type"] == "reset" for f in slow.frames)

        await slow.wait(caught_up_or_reset, timeout=30, what="the missed events or a reset")
        if any(f["type"] == "reset" for f in slow.frames):
            # After the reset (the client reloads over HTTP), live events again.
            published += await _publish(tenant, 1401, 1)
            await slow.wait(
                lambda: published[-1] in [f["event_id"] for f in slow.events("flood")],
                what="a live event after the reset",
            )
        kinds = [f["type"] for f in slow.frames]
        assert set(kinds) <= {"event", "reset", "ping"}, set(kinds)
        got = [f["event_id"] for f in slow.events("flood")]
        assert_increasing(slow.events("flood"))
        if "reset" not in kinds:
            assert got == published, "caught up: every event once, in order"
        else:
            cut = kinds.index("reset")
            before_reset = [f["event_id"] for f in slow.frames[:cut] if f["type"] == "event"]
            after_reset = [f["event_id"] for f in slow.frames[cut:] if f["type"] == "event"]
            assert before_reset == published[: len(before_reset)], "no gap before the reset"
            assert after_reset and after_reset == published[len(published) - len(after_reset) :]
        await slow.close()
    finally:
        await stalled.close()
        await reader.close()


async def test_a_client_that_never_answers_is_dropped_and_released(tenantry):
    config = add_market(tenantry, realtime={"ping_seconds": 5})
    await tenantry.start(watch=False)
    redis = tenantry.runtime.redis
    prefix = config["storage"]["redis_prefix"]

    async def flowers_channels() -> list[str]:
        channels = await redis.pubsub_channels(f"*{prefix}*")
        return [c for c in channels if "orders:flowers" in c]

    silent = await follow(
        tenantry.url,
        "market",
        key_headers(partner_key(tenantry, "market", "flowers")),
        {"orders:flowers": None},
        answer_pings=False,
    )
    chatty = await follow(
        tenantry.url,
        "market",
        key_headers(partner_key(tenantry, "market", "bakery")),
        {"orders:bakery": None},
    )
    try:
        # The live channel of the topic carries the tenant's Redis prefix.
        assert await flowers_channels(), "no live channel of orders:flowers under the tenant prefix"
        code = await silent.wait_closed(timeout=25)
        assert code == 4408
        quiet = silent.closed_at - silent.last_sent
        assert 9.0 <= quiet <= 16.0, f"closed after {quiet:.1f} s of silence (ping_seconds 5)"
        assert [f for f in silent.frames if f["type"] == "ping"], "the server pinged first"
        # The one that answers stays, pinged as often.
        assert chatty.close_code is None
        assert len([f for f in chatty.frames if f["type"] == "ping"]) >= 1
        # Released: nothing of the dropped connection stays subscribed.
        await wait_until(lambda: _none(flowers_channels()), what="the dropped client's channel released")  # fmt: skip
    finally:
        await silent.close()
        await chatty.close()


async def _none(channels) -> bool:
    return not await channels
