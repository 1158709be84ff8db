"""Smoke test of the realtime plugin: an order created over the API arrives as a frame."""

from __future__ import annotations

import asyncio
import json

import websockets
from orders.conftest import ORDERS_SETTINGS, Market


async def test_an_order_created_over_the_api_arrives_as_a_frame(tenantry):
    config = tenantry.add_tenant(
        "market",
        features={"orders": ORDERS_SETTINGS, "realtime": {"ping_seconds": 5}},
        limits={"api_writes": "1000/minute", "webapp_writes": "1000/minute"},
    )
    await tenantry.start()
    market = Market(tenantry, config)
    base = "/api/tenants/market/realtime"
    ticket = await tenantry.client.post(f"{base}/tickets", headers=market.api())
    assert ticket.status_code == 201, ticket.text
    assert "orders:bakery" in ticket.json()["topics"]
    url = tenantry.url.replace("http", "ws") + f"{base}/ws?ticket={ticket.json()['ticket']}"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": {"orders:bakery": None}}))
        subscribed = json.loads(await ws.recv())
        assert subscribed["type"] == "subscribed"
        order = await market.pickup_order()
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["type"] == "event" and frame["event"] == "orders.created"
        assert frame["data"]["order_id"] == order["id"]
        cursor = frame["id"]
    await market.set_status(order["id"], {"status": "preparing"})
    ticket = await tenantry.client.post(f"{base}/tickets", headers=market.api())
    url = tenantry.url.replace("http", "ws") + f"{base}/ws?ticket={ticket.json()['ticket']}"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": {"orders:bakery": cursor}}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        missed = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert missed["event"] == "orders.status_changed"
