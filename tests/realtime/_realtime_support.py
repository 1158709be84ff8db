"""Tenants, WebSocket clients and helpers shared by the realtime tests (imported by name).

Everything here speaks the protocol of docs/plugins/realtime.md over the
network: tickets over HTTP, the socket with the ``websockets`` library, frames
as JSON text. A runtime in a process of its own is ``_realtime_process.RuntimeProcess``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.testing.updates import webapp_init_data

CUSTOMER = 5001
PARTNER_BAKERY = 7001
FLORIST = 7003
ADMIN = 900000001  # the harness's default bot.admins

ORDERS: dict[str, Any] = {
    "expire_after_minutes": 15,
    "max_active_orders_per_customer": 0,
    "stores": [
        {
            "id": "bakery",
            "name": "Bakery",
            "partners": [PARTNER_BAKERY],
            "pickup": True,
            "delivery": True,
            "delivery_fee": 15000,
            "currency": "RUB",
        },
        {"id": "flowers", "name": "Flowers", "partners": [FLORIST], "pickup": True},
    ],
    "categories": [
        {"id": "bread", "store": "bakery", "name": "Bread"},
        {"id": "bouquets", "store": "flowers", "name": "Bouquets"},
    ],
    "items": [
        {"sku": "baguette", "store": "bakery", "category": "bread", "name": "Baguette", "price": 12000},
        {"sku": "rye", "store": "bakery", "category": "bread", "name": "Rye", "price": 9000},
        {"sku": "tulips", "store": "flowers", "category": "bouquets", "name": "Tulips", "price": 250000},
    ],
}  # fmt: skip
"""``features.orders`` of the market tenants: two stores, bakery (RUB) and flowers."""


def partner_key(tenantry: Any, tenant_id: str, store: str) -> str:
    """The scoped partner key :func:`add_market` gives ``store`` of ``tenant_id``."""
    return f"{store}-{tenant_id}-{tenantry.run_id}"


def add_market(
    tenantry: Any,
    tenant_id: str = "market",
    *,
    realtime: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Write a marketplace tenant with orders and realtime, and partner keys for both stores.

    Keys: the harness's plain (admin) key, and one scoped ``partner`` key per
    store (:func:`partner_key`), as tenants/market.yaml has them.
    """
    keys: list[Any] = [tenantry.api_key(tenant_id)]
    for store in ("bakery", "flowers"):
        keys.append(
            {
                "key": partner_key(tenantry, tenant_id, store),
                "role": "partner",
                "scope": {"store": store},
                "name": f"{store}-panel",
            }
        )
    return tenantry.add_tenant(
        tenant_id,
        timezone="Europe/Moscow",
        api={"keys": keys},
        features={"orders": ORDERS, "realtime": realtime or {}, **(features or {})},
        limits={"api_writes": "1000/minute", "webapp_writes": "1000/minute"},
        **fields,
    )


def webapp_headers(
    config: dict[str, Any], user_id: int, first_name: str = "Anna"
) -> dict[str, str]:
    """``X-Telegram-Init-Data`` of ``user_id``, signed with the tenant's bot token."""
    init = webapp_init_data(config["bot"]["token"], {"id": user_id, "first_name": first_name})
    return {"X-Telegram-Init-Data": init}


def key_headers(key: str) -> dict[str, str]:
    """``X-API-Key`` headers."""
    return {"X-API-Key": key}


async def item_ids(tenantry: Any, config: dict[str, Any]) -> dict[str, int]:
    """sku -> item id of the tenant's catalog."""
    schema = config["storage"]["schema"]
    rows = await tenantry.sql(f'SELECT sku, id FROM "{schema}".items')
    return {row["sku"]: row["id"] for row in rows}


async def create_order(
    http: httpx.AsyncClient,
    tenant_id: str,
    admin_key: str,
    items: dict[str, int],
    *,
    store: str = "bakery",
    sku: str = "baguette",
    quantity: int = 2,
    customer_name: str = "Anna",
) -> dict[str, Any]:
    """Create a pickup order through the orders API with an admin key; return the order.

    Raises:
        AssertionError: the API did not answer 201.
    """
    body = {
        "store_id": store,
        "type": "pickup",
        "items": [{"item_id": items[sku], "quantity": quantity}],
        "phone": "+79990001122",
        "customer_id": CUSTOMER,
        "customer_name": customer_name,
    }
    response = await http.post(
        f"/api/tenants/{tenant_id}/orders/orders", json=body, headers=key_headers(admin_key)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def set_order_status(
    http: httpx.AsyncClient, tenant_id: str, admin_key: str, order_id: int, status: str
) -> dict[str, Any]:
    """Move an order to ``status`` through the orders API with an admin key."""
    response = await http.post(
        f"/api/tenants/{tenant_id}/orders/orders/{order_id}/status",
        json={"status": status},
        headers=key_headers(admin_key),
    )
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- tickets and sockets


async def ticket_response(base_url: str, tenant_id: str, headers: dict[str, str]) -> httpx.Response:
    """``POST /api/tenants/{tenant_id}/realtime/tickets`` with ``headers``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        return await http.post(f"/api/tenants/{tenant_id}/realtime/tickets", headers=headers)


async def ticket(base_url: str, tenant_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """A ticket body (``ticket``, ``expires_in``, ``topics``).

    Raises:
        AssertionError: the answer was not 201.
    """
    response = await ticket_response(base_url, tenant_id, headers)
    assert response.status_code == 201, response.text
    return response.json()


def ws_url(base_url: str, tenant_id: str, ticket_token: str | None) -> str:
    """The WebSocket address of ``tenant_id`` with ``?ticket=`` (none when ``ticket_token`` is None)."""
    url = base_url.replace("http://", "ws://", 1) + f"/api/tenants/{tenant_id}/realtime/ws"
    return url if ticket_token is None else f"{url}?ticket={ticket_token}"


async def refused_status(url: str) -> int:
    """The HTTP status with which the server refused to upgrade ``url``.

    Raises:
        AssertionError: the upgrade completed (or the server answered nothing).
    """
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=10, ping_interval=None):
            pass
    return refused.value.response.status_code


class Socket:
    """One WebSocket client that records every frame the server sends.

    Args:
        ws: the open connection.
        answer_pings: answer the server's ``ping`` frames with ``pong``
            (False: a client that never answers).
        keep_data: keep each event's ``data`` (False: replaced by its size in
            characters, for clients that receive many large events).

    Attributes:
        frames: every frame received, decoded, in arrival order.
        arrived: ``time.monotonic()`` of each frame in :attr:`frames`.
        close_code: the close code once the connection closed.
        closed_at: ``time.monotonic()`` when the connection closed.
    """

    def __init__(self, ws: ClientConnection, *, answer_pings: bool = True, keep_data: bool = True):
        self.ws = ws
        self.answer_pings = answer_pings
        self.keep_data = keep_data
        self.frames: list[dict[str, Any]] = []
        self.arrived: list[float] = []
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self.last_sent = time.monotonic()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if not self.keep_data and "data" in frame:
                    frame["data"] = len(raw)
                self.frames.append(frame)
                self.arrived.append(time.monotonic())
                if frame.get("type") == "ping" and self.answer_pings:
                    await self.send({"type": "pong"})
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed_at = time.monotonic()
            self._changed.set()

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send a JSON message (or raw text)."""
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))
        self.last_sent = time.monotonic()

    async def subscribe(self, topics: dict[str, str | None]) -> list[dict[str, Any]]:
        """Subscribe and return the answer for each topic (``subscribed``, ``reset`` or ``error``)."""
        start = len(self.frames)
        await self.send({"type": "subscribe", "topics": topics})

        def answers() -> list[dict[str, Any]]:
            found = {}
            for frame in self.frames[start:]:
                if frame.get("type") in ("subscribed", "error") and frame.get("topic") in topics:
                    found.setdefault(frame["topic"], frame)
            return [found[t] for t in topics if t in found]

        await self.wait(lambda: len(answers()) == len(topics), what=f"answers to {topics}")
        return answers()

    async def wait(
        self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "a frame"
    ) -> None:
        """Wait until ``condition()`` holds (it is checked after each frame).

        Raises:
            AssertionError: not within ``timeout`` seconds (the frames so far are shown).
        """
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                shown = [
                    {k: f.get(k) for k in ("type", "topic", "event", "id", "code")}
                    for f in self.frames[-10:]
                ]
                raise AssertionError(f"{what} did not arrive in {timeout} s; last frames: {shown}")  # fmt: skip
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def events(self, topic: str | None = None) -> list[dict[str, Any]]:
        """The ``event`` frames received so far (of ``topic`` only, when given)."""
        return [
            f
            for f in self.frames
            if f.get("type") == "event" and (topic is None or f.get("topic") == topic)
        ]

    async def wait_events(
        self, topic: str, count: int, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait for at least ``count`` event frames of ``topic``; return them all."""
        await self.wait(
            lambda: len(self.events(topic)) >= count, timeout, f"{count} events of {topic}"
        )
        return self.events(topic)

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the connection closed; return its close code."""
        await self.wait(lambda: self.closed_at is not None, timeout, "the close")
        return self.close_code

    async def close(self) -> None:
        """Close the connection (if still open) and stop reading."""
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


async def open_socket(
    base_url: str,
    tenant_id: str,
    ticket_token: str,
    *,
    answer_pings: bool = True,
    keep_data: bool = True,
) -> Socket:
    """Open the socket with ``ticket_token`` (the library's own keep-alive pings off)."""
    ws = await connect(
        ws_url(base_url, tenant_id, ticket_token), open_timeout=10, ping_interval=None
    )
    return Socket(ws, answer_pings=answer_pings, keep_data=keep_data)


async def follow(
    base_url: str,
    tenant_id: str,
    headers: dict[str, str],
    topics: dict[str, str | None],
    *,
    answer_pings: bool = True,
) -> Socket:
    """Get a ticket with ``headers``, open the socket and subscribe to ``topics``.

    Raises:
        AssertionError: a topic was not answered ``subscribed``.
    """
    body = await ticket(base_url, tenant_id, headers)
    socket = await open_socket(base_url, tenant_id, body["ticket"], answer_pings=answer_pings)
    answers = await socket.subscribe(topics)
    assert [a["type"] for a in answers] == ["subscribed"] * len(topics), answers
    return socket


def stream_id(frame_id: str) -> tuple[int, int]:
    """``"1767225601234-0"`` as the two integers the doc says to compare."""
    millis, _, sequence = frame_id.partition("-")
    return int(millis), int(sequence)


def assert_increasing(frames: Iterable[dict[str, Any]]) -> None:
    """Each frame's ``id`` comes after the one before it (compared as ``ms-seq`` integers)."""
    ids = [stream_id(f["id"]) for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids


# ---------------------------------------------------------------- events, metrics


async def insert_outbox_events(
    database_url: str,
    schema: str,
    tenant_id: str,
    events: list[tuple[str, dict[str, Any]]],
    *,
    occurred_at: datetime | None = None,
) -> list[str]:
    """Commit ``(name, payload)`` events in the tenant's outbox in one transaction, as ``publish`` does.

    The row layout and the ``NOTIFY tenantry_outbox, <tenant id>`` are the
    core's (docs/hooks.md, "Publishing"); this is how a test publishes into a
    runtime running in another process, or an event with an ``occurred_at``
    in the past (one committed while every runtime was down).

    Returns:
        The event ids, in commit order.
    """
    import asyncpg

    ids = [uuid.uuid4().hex for _ in events]
    moment = occurred_at or datetime.now(UTC)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.executemany(
                f'INSERT INTO "{schema}".tenantry_outbox (event_id, name, payload, occurred_at) '
                "VALUES ($1, $2, $3::jsonb, $4)",
                [
                    (event_id, name, json.dumps(payload), moment)
                    for event_id, (name, payload) in zip(ids, events, strict=True)
                ],
            )
            await conn.execute("SELECT pg_notify('tenantry_outbox', $1)", tenant_id)
    finally:
        await conn.close()
    return ids


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, what: str = "the condition"
) -> Any:
    """Poll ``condition`` (sync or async) every 50 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        await asyncio.sleep(0.05)
