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
