"""Outgoing webhooks against a local receiving server: signature, retries with backoff, giving up.

docs/plugins/realtime.md, "Outgoing webhooks". The receiver is an aiohttp
server in the test on 127.0.0.1; it records each POST's raw body, headers and
arrival time and answers what the test tells it to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import _flood_plugin
import pytest_asyncio
from _realtime_support import (
    add_market,
    create_order,
    insert_outbox_events,
    item_ids,
    key_headers,
    metric_value,
    partner_key,
    wait_until,
)
from aiohttp import web

from core.testing.plugin import free_port

SECRET_VAR = "MARKET_WEBHOOK_SIGNING_SECRET"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The verification recipe of docs/plugins/realtime.md, as a partner would copy it."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) <= tolerance  # fmt: skip


class Receiver:
    """A partner system: records every POST and answers ``status_for(attempt number)``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status_for: Callable[[int], int] = lambda n: 200
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append(
            {"at": time.monotonic(), "headers": dict(request.headers), "raw": raw, "path": request.path}
        )  # fmt: skip
        return web.Response(status=self.status_for(len(self.requests)), text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _metrics(tenantry) -> str:
    response = await tenantry.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def _states(tenantry, tenant_id: str = "market") -> list[dict[str, Any]]:
    response = await tenantry.client.get(
        f"/api/tenants/{tenant_id}/realtime/webhooks", headers=key_headers(tenantry.api_key(tenant_id))
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_webhook_is_signed_as_documented_and_only_matching_events_are_sent(
    tenantry, receiver, monkeypatch
):
    secret = "whsec-" + "k" * 24
    monkeypatch.setenv(SECRET_VAR, secret)
    hook = {"url": f"{receiver.url}/hooks/tenantry", "events": ["orders.*"], "secret": "${" + SECRET_VAR + "}"}  # fmt: skip
    config = add_market(tenantry, realtime={"webhooks": [hook]}, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    items = await item_ids(tenantry, config)
    tenant = tenantry.runtime.registry.get("market")
    delivered_before = metric_value(await _metrics(tenantry), "tenantry_webhook_deliveries_total", tenant="market", outcome="delivered")  # fmt: skip

    order = await create_order(tenantry.client, "market", tenantry.api_key("market"), items)
    async with tenant.db.transaction() as conn:
        await tenant.publish(
            "flood.tick", {"n": 1}, conn=conn
        )  # matches no pattern of the endpoint
    second = await create_order(tenantry.client, "market", tenantry.api_key("market"), items)
    await wait_until(lambda: len(receiver.requests) >= 2, what="two deliveries")

    bodies = [json.loads(r["raw"]) for r in receiver.requests]
    assert sorted(b["data"]["order_id"] for b in bodies) == [order["id"], second["id"]]
    for request, body in zip(receiver.requests, bodies, strict=True):
        headers = request["headers"]
        assert request["path"] == "/hooks/tenantry"
        assert set(body) == {"id", "event", "tenant", "occurred_at", "data"}
        assert (body["event"], body["tenant"]) == ("orders.created", "market")
        assert headers["Tenantry-Event-Id"] == body["id"] and len(body["id"]) == 32
        assert headers["Tenantry-Event"] == "orders.created"
        assert datetime.fromisoformat(body["occurred_at"]).utcoffset() == timedelta(0)
        signature = headers["Tenantry-Signature"]
        assert verify(secret, signature, request["raw"])
        assert not verify("another-secret-of-16+", signature, request["raw"])
        assert not verify(secret, signature, request["raw"].replace(b"Anna", b"Anya"))
        timestamp = int(dict(p.split("=", 1) for p in signature.split(","))["t"])
        assert abs(time.time() - timestamp) < 60

    [state] = await _states(tenantry)
    assert state["url"] == hook["url"]
    assert (state["delivered"], state["given_up"], state["last_error"]) == (2, 0, None)
    assert len(receiver.requests) == 2  # the flood event was never POSTed
    delivered_after = metric_value(await _metrics(tenantry), "tenantry_webhook_deliveries_total", tenant="market", outcome="delivered")  # fmt: skip
    assert delivered_after - delivered_before == 2

    # The webhooks' state is for admins; a partner key is refused.
    partner = await tenantry.client.get(
        "/api/tenants/market/realtime/webhooks",
        headers=key_headers(partner_key(tenantry, "market", "bakery")),
    )
    assert partner.status_code == 403, partner.text


async def test_a_failing_endpoint_is_retried_with_backoff_and_the_same_event_id(
    tenantry, receiver, monkeypatch
):
    monkeypatch.setenv(SECRET_VAR, "s" * 32)
    receiver.status_for = lambda n: 503 if n <= 2 else 204  # down twice, then back
    hook = {"url": f"{receiver.url}/in", "secret": "${" + SECRET_VAR + "}", "retry_for_seconds": 60}
    config = add_market(tenantry, realtime={"webhooks": [hook]})
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    retried_before = metric_value(await _metrics(tenantry), "tenantry_webhook_deliveries_total", tenant="market", outcome="retried")  # fmt: skip

    order = await create_order(tenantry.client, "market", tenantry.api_key("market"), items)
    await wait_until(lambda: len(receiver.requests) >= 3, timeout=15, what="three attempts")
    assert {r["headers"]["Tenantry-Event-Id"] for r in receiver.requests} == {
        json.loads(receiver.requests[0]["raw"])["id"]
    }
    assert json.loads(receiver.requests[2]["raw"])["data"]["order_id"] == order["id"]
    gaps = [
        b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)
    ]
    # Backoff 1 s, then 2 s. The job queue schedules in whole seconds (saq
    # ``scheduled``), so each wait may come up to a second early or late:
    # the second one is still more than a second, and neither is long.
    assert gaps[0] < 3.5 and 1.0 <= gaps[1] < 4.5, gaps

    async def delivered():
        states = await _states(tenantry)
        return states[0]["delivered"] == 1 and states[0]

    state = await wait_until(delivered, what="the delivery recorded")
    assert state["given_up"] == 0
    assert "503" in (state["last_error"] or ""), state
    retried_after = metric_value(await _metrics(tenantry), "tenantry_webhook_deliveries_total", tenant="market", outcome="retried")  # fmt: skip
    assert retried_after - retried_before == 2


async def test_an_endpoint_failing_past_retry_for_seconds_is_given_up(
    tenantry, receiver, monkeypatch
):
    monkeypatch.setenv(SECRET_VAR, "s" * 32)
    receiver.status_for = lambda n: 500
    hook = {"url": f"{receiver.url}/down", "secret": "${" + SECRET_VAR + "}",
            "events": ["flood.*"], "retry_for_seconds": 60}  # fmt: skip
    config = add_market(tenantry, realtime={"webhooks": [hook]}, features={"flood": {}})
    await tenantry.start(watch=False, plugins=[("flood", _flood_plugin)])
    given_up_before = metric_value(await _metrics(tenantry), "tenantry_webhook_deliveries_total", tenant="market", outcome="given_up")  # fmt: skip

    # An event committed 56 s ago (say, while the runtimes were down): "retried
    # ... until retry_for_seconds after the event" leaves it about 4 s of retries.
    occurred = datetime.now(UTC) - timedelta(seconds=56)
    [event_id] = await insert_outbox_events(
        tenantry.database_url, config["storage"]["schema"], "market",
        [("flood.late", {"n": 1})], occurred_at=occurred,
    )  # fmt: skip
    window_ends = time.monotonic() - (datetime.now(UTC) - occurred).total_seconds() + 60

    async def given_up():
        states = await _states(tenantry)
        return states[0]["given_up"] == 1 and states[0]

    state = await wait_until(given_up, timeout=20, what="the endpoint given up")
    attempts = len(receiver.requests)
    assert attempts >= 2, "retried at least once before giving up"
    assert {r["headers"]["Tenantry-Event-Id"] for r in receiver.requests} == {event_id}
    # No attempt later than retry_for_seconds after the event (a little scheduling slack).
    assert all(r["at"] <= window_ends + 2 for r in receiver.requests)
    assert state["delivered"] == 0 and state["last_error"] == "HTTP 500", state
    given_up_after = metric_value(await _metrics(tenantry), "tenantry_webhook_deliveries_total", tenant="market", outcome="given_up")  # fmt: skip
    assert given_up_after - given_up_before == 1
    # Given up means no more attempts: the next backoff step (4 s or more) passes in silence.
    await _pause(4.5)
    assert len(receiver.requests) == attempts


async def _pause(seconds: float) -> None:
    # Proving that nothing happens takes time; there is no event to await.
    import asyncio

    await asyncio.sleep(seconds)
