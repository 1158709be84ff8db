"""Ticket misuse is refused before the upgrade completes (HTTP 403, no WebSocket).

docs/plugins/realtime.md, "2. Open the socket": a missing, wrong, used or
expired ticket is refused, and a ticket is consumed by the first attempt,
right or wrong tenant. Keys never travel in URLs.
"""

from __future__ import annotations

import asyncio
import time

from _realtime_support import (
    add_market,
    follow,
    key_headers,
    open_socket,
    partner_key,
    refused_status,
    ticket,
    ws_url,
)


async def test_missing_wrong_and_reused_tickets_are_refused_before_the_upgrade(tenantry):
    add_market(tenantry)
    await tenantry.start(watch=False)
    admin_key = tenantry.api_key("market")

    assert await refused_status(ws_url(tenantry.url, "market", None)) == 403
    assert await refused_status(ws_url(tenantry.url, "market", "")) == 403
    assert await refused_status(ws_url(tenantry.url, "market", "rt_" + "A" * 32)) == 403
    # An API key is not a ticket: keys never open the socket from a URL.
    assert await refused_status(ws_url(tenantry.url, "market", admin_key)) == 403
    partner = partner_key(tenantry, "market", "bakery")
    assert await refused_status(ws_url(tenantry.url, "market", partner)) == 403

    body = await ticket(tenantry.url, "market", key_headers(admin_key))
    socket = await open_socket(tenantry.url, "market", body["ticket"])
    try:
        [answer] = await socket.subscribe({"orders": None})
        assert answer["type"] == "subscribed"
        # Used once: a second socket (even while the first is open) is refused.
        assert await refused_status(ws_url(tenantry.url, "market", body["ticket"])) == 403
    finally:
        await socket.close()
    assert await refused_status(ws_url(tenantry.url, "market", body["ticket"])) == 403


async def test_an_expired_ticket_is_refused(tenantry):
    add_market(tenantry, realtime={"ticket_seconds": 5})
    await tenantry.start(watch=False)
    headers = key_headers(tenantry.api_key("market"))
    fresh = await ticket(tenantry.url, "market", headers)
    stale = await ticket(tenantry.url, "market", headers)
    issued = time.monotonic()
    assert stale["expires_in"] == 5
    socket = await open_socket(tenantry.url, "market", fresh["ticket"])
    await socket.close()
    # Expiry is a matter of time passing; there is no condition to wait for.
    await asyncio.sleep(max(0.0, issued + 5.5 - time.monotonic()))
    assert await refused_status(ws_url(tenantry.url, "market", stale["ticket"])) == 403


async def test_another_tenants_ticket_is_refused_and_used_up(tenantry):
    add_market(tenantry, "market")
    add_market(tenantry, "bazaar")
    await tenantry.start(watch=False)
    body = await ticket(tenantry.url, "market", key_headers(tenantry.api_key("market")))

    # A ticket opens only its own tenant's socket (tickets live under the tenant's prefix).
    assert await refused_status(ws_url(tenantry.url, "bazaar", body["ticket"])) == 403

    # A key of one tenant gets no ticket of another.
    other = await tenantry.client.post(
        "/api/tenants/bazaar/realtime/tickets", headers=key_headers(tenantry.api_key("market"))
    )
    assert other.status_code == 401, other.text


async def test_a_staff_pages_socket_ends_with_its_web_session(tenantry):
    from core.web.sessions import SESSION_COOKIE

    config = add_market(tenantry, realtime={"ping_seconds": 0.3})
    await tenantry.start()
    client = tenantry.client
    signed_in = await client.post(
        "/web/market/signin",
        data={"key": partner_key(tenantry, "market", "bakery"), "next": "/web/market/"},
    )
    assert signed_in.status_code == 303, signed_in.text
    cookie = {"Cookie": f"{SESSION_COOKIE}={signed_in.cookies[SESSION_COOKIE]}"}
    answer = await client.post(
        "/web/market/realtime/ticket", headers={**cookie, "X-Tenantry-Web": "1"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["topics"] == ["orders:bakery"]
    socket = await open_socket(tenantry.url, "market", answer.json()["ticket"])
    try:
        await socket.subscribe({"orders:bakery": None})
        await asyncio.sleep(1.0)  # three pings: the session is alive, the socket stays
        assert socket.closed_at is None
        prefix = config["storage"]["redis_prefix"]
        [key] = [k async for k in tenantry.runtime.redis.scan_iter(f"{prefix}web:session:*")]
        await tenantry.runtime.redis.delete(key)  # signed out, or expired
        assert await socket.wait_closed(timeout=5) == 4401
        # An API key's socket has no session to end with.
        partner = await follow(
            tenantry.url,
            "market",
            key_headers(partner_key(tenantry, "market", "bakery")),
            {"orders:bakery": None},
        )
        await asyncio.sleep(1.0)
        assert partner.closed_at is None
        await partner.close()
    finally:
        await socket.close()
