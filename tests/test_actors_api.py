"""Actors over HTTP: scoped partner keys, read-only keys (API and web pages), WebApp partners, keys confined to a tenant."""

from __future__ import annotations

import re
from typing import Any

import pytest_asyncio
from litestar import Litestar

from core import hookimpl
from core.http.mounts import build_plugin_routers
from core.runtime.contributions import contributions_of
from core.runtime.plugins import build_plugin_manager
from core.testing.updates import webapp_init_data
from core.web.mount import build_web_routers
from core.web.sessions import SESSION_COOKIE

BAKER = 7001  # partner of the bakery
FLORIST = 7003  # partner of the flowers store
CUSTOMER = 5001

ORDERS: dict[str, Any] = {
    "expire_after_minutes": 0,
    "stores": [
        {"id": "bakery", "name": "Bakery", "partners": [BAKER], "pickup": True},
        {"id": "flowers", "name": "Flowers", "partners": [FLORIST], "pickup": True},
    ],
    "categories": [
        {"id": "bread", "store": "bakery", "name": "Bread"},
        {"id": "bouquets", "store": "flowers", "name": "Bouquets"},
    ],
    "items": [
        {"sku": "rye", "store": "bakery", "category": "bread", "name": "Rye", "price": 9000},
        {
            "sku": "tulips",
            "store": "flowers",
            "category": "bouquets",
            "name": "Tulips",
            "price": 25000,
        },
    ],
}

RESTAURANT: dict[str, Any] = {
    "kind": "tables",
    "tables": [{"id": "t1", "seats": 2}],
    "opening_hours": dict.fromkeys(
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "12:00-23:00"
    ),
}


class Market:
    """A running marketplace tenant with a plain, two partner and a read-only key."""

    def __init__(self, tenantry: Any, config: dict[str, Any], tenant_id: str = "market"):
        self.h = tenantry
        self.config = config
        self.id = tenant_id
        self.base = f"/api/tenants/{tenant_id}/orders"
        self.schema = config["storage"]["schema"]
        self.token = config["bot"]["token"]

    def key(self, name: str) -> dict[str, str]:
        return {"X-API-Key": f"{self.id}-{name}-{self.h.run_id}"}

    def webapp(self, user_id: int) -> dict[str, str]:
        init = webapp_init_data(self.token, {"id": user_id, "first_name": f"user{user_id}"})
        return {"X-Telegram-Init-Data": init}

    async def item(self, sku: str) -> int:
        [row] = await self.h.sql(f'SELECT id FROM "{self.schema}".items WHERE sku = $1', sku)
        return row["id"]

    async def order(self, store: str, sku: str) -> int:
        body = {
            "store_id": store,
            "type": "pickup",
            "items": [{"item_id": await self.item(sku), "quantity": 1}],
            "phone": "+79990001122",
        }
        response = await self.h.client.post(
            f"{self.base}/orders", json=body, headers=self.webapp(CUSTOMER)
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def status_of(self, order_id: int) -> str:
        [row] = await self.h.sql(
            f'SELECT status FROM "{self.schema}".orders WHERE id = $1', order_id
        )
        return row["status"]


def keys(tenantry: Any, tenant_id: str) -> list[Any]:
    def key(name: str) -> str:
        return f"{tenant_id}-{name}-{tenantry.run_id}"

    return [
        key("admin"),
        {
            "key": key("bakery"),
            "role": "partner",
            "scope": {"store": "bakery"},
            "name": "bakery-panel",
        },
        {"key": key("flowers"), "role": "partner", "scope": {"store": ["flowers"]}},
        {"key": key("reports"), "read_only": True, "name": "reports"},
    ]


@pytest_asyncio.fixture
async def market(tenantry: Any) -> Market:
    features: dict[str, Any] = {"orders": ORDERS, "booking": RESTAURANT}
    config = tenantry.add_tenant(
        "market", features=features, api={"keys": keys(tenantry, "market")}
    )
    other = tenantry.add_tenant(
        "other", features={"orders": ORDERS}, api={"keys": keys(tenantry, "other")}
    )
    await tenantry.start()
    await tenantry.wait_state("market", "running")
    await tenantry.wait_state("other", "running")
    market = Market(tenantry, config)
    market.other = Market(tenantry, other, "other")  # type: ignore[attr-defined]
    return market


async def test_a_partner_key_reads_and_changes_only_its_own_stores_orders(market):
    client = market.h.client
    bread = await market.order("bakery", "rye")
    flowers = await market.order("flowers", "tulips")
    bakery_key = market.key("bakery")

    listing = await client.get(f"{market.base}/orders", headers=bakery_key)
    assert listing.status_code == 200
    assert [o["id"] for o in listing.json()] == [bread]
    assert [
        o["id"]
        for o in (await client.get(f"{market.base}/orders", headers=market.key("admin"))).json()
    ] == [flowers, bread]
    named = await client.get(
        f"{market.base}/orders", params={"store": "flowers"}, headers=bakery_key
    )
    assert named.status_code == 403 and named.json()["code"] == "orders.store_out_of_scope"
    assert named.json()["stores"] == ["bakery"]

    # Another store's order is not there for this key: read, history and change are 404.
    for path in (f"/orders/{flowers}", f"/orders/{flowers}/history"):
        response = await client.get(market.base + path, headers=bakery_key)
        assert response.status_code == 404 and response.json()["code"] == "orders.not_found"
    moved = await client.post(
        f"{market.base}/orders/{flowers}/status", json={"status": "preparing"}, headers=bakery_key
    )
    assert moved.status_code == 404 and moved.json()["code"] == "orders.not_found"
    assert await market.status_of(flowers) == "pending"

    # Its own: read and changed as partner, recorded with the role.
    assert (
        await client.get(f"{market.base}/orders/{bread}", headers=bakery_key)
    ).status_code == 200
    moved = await client.post(
        f"{market.base}/orders/{bread}/status", json={"status": "preparing"}, headers=bakery_key
    )
    assert moved.status_code == 200 and moved.json()["status"] == "preparing"
    history = (await client.get(f"{market.base}/orders/{bread}/history", headers=bakery_key)).json()
    assert [(h["to_status"], h["role"], h["actor_id"], h["key_name"]) for h in history] == [
        ("pending", "customer", CUSTOMER, None),
        ("preparing", "partner", None, "bakery-panel"),
    ]

    # The key says who acts: a body naming a role or actor is refused, nothing moves.
    for body in ({"role": "admin"}, {"role": "partner", "actor_id": BAKER}, {"actor_id": BAKER}):
        refused = await client.post(
            f"{market.base}/orders/{bread}/status",
            json={"status": "ready", **body},
            headers=bakery_key,
        )
        assert refused.status_code == 400 and refused.json()["code"] == "orders.actor_from_key"
    assert await market.status_of(bread) == "preparing"
    # A plain (admin) key keeps acting as a named partner, as before.
    compat = await client.post(
        f"{market.base}/orders/{flowers}/status",
        json={"status": "preparing", "role": "partner", "actor_id": FLORIST},
        headers=market.key("admin"),
    )
    assert compat.status_code == 200
    wrong = await client.post(
        f"{market.base}/orders/{bread}/status",
        json={"status": "ready", "role": "partner", "actor_id": FLORIST},
        headers=market.key("admin"),
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "orders.not_partner"

    # Partner keys do not place orders.
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "customer_id": CUSTOMER,
        "items": [{"item_id": await market.item("rye")}],
        "phone": "+79990001122",
    }
    created = await client.post(f"{market.base}/orders", json=body, headers=bakery_key)
    assert created.status_code == 403 and created.json()["code"] == "auth.role_required"


async def test_a_partner_key_sees_and_edits_only_its_own_stores_catalog(market):
    client = market.h.client
    bakery_key = market.key("bakery")
    catalog = (await client.get(f"{market.base}/catalog", headers=bakery_key)).json()
    assert [s["id"] for s in catalog] == ["bakery"]
    assert [
        s["id"]
        for s in (await client.get(f"{market.base}/catalog", headers=market.webapp(BAKER))).json()
    ] == ["bakery", "flowers"]
    items = (await client.get(f"{market.base}/items", headers=bakery_key)).json()
    assert [i["sku"] for i in items] == ["rye"]

    tulips = await market.item("tulips")
    for method, path, body in (
        ("PATCH", f"/items/{tulips}", {"price": 1}),
        ("DELETE", f"/items/{tulips}", None),
        ("PATCH", "/categories/bouquets", {"name": "Mine"}),
        ("DELETE", "/categories/bouquets", None),
    ):
        response = await client.request(method, market.base + path, json=body, headers=bakery_key)
        assert response.status_code == 404, (method, path, response.text)
    other_store = await client.post(
        f"{market.base}/categories",
        json={"id": "vases", "store_id": "flowers", "name": "Vases"},
        headers=bakery_key,
    )
    assert (
        other_store.status_code == 403 and other_store.json()["code"] == "orders.store_out_of_scope"
    )
    foreign = await client.post(
        f"{market.base}/items",
        json={"category_id": "bouquets", "sku": "lily", "name": "Lily", "price": 100},
        headers=bakery_key,
    )
    assert foreign.status_code == 400 and foreign.json()["code"] == "orders.unknown_category"
    [row] = await market.h.sql(
        f'SELECT price, archived FROM "{market.schema}".items WHERE id = $1', tulips
    )
    assert row == {"price": 25000, "archived": False}

    rye = await market.item("rye")
    own = await client.patch(f"{market.base}/items/{rye}", json={"price": 9500}, headers=bakery_key)
    assert own.status_code == 200 and own.json()["price"] == 9500
    added = await client.post(
        f"{market.base}/categories",
        json={"id": "buns", "store_id": "bakery", "name": "Buns"},
        headers=bakery_key,
    )
    assert added.status_code == 201


def _write_routes(routers: list[Any], under: str = "") -> list[tuple[str, str]]:
    """``(method, path)`` of every write route of ``routers`` whose path starts with ``under``."""
    app = Litestar(route_handlers=routers)
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in handler.http_methods:
                if method not in ("GET", "HEAD", "OPTIONS") and route.path.startswith(under):
                    found.append((method, route.path))
    return sorted(set(found))


def _concrete(template: str, tenant_id: str) -> str:
    """A route template with its path parameters filled in: the tenant, ``1`` and ``x``."""
    path = re.sub(r"\{tenant_id:str\}", tenant_id, template)
    path = re.sub(r"\{\w+:int\}", "1", path)
    return re.sub(r"\{\w+:str\}", "x", path)


async def test_a_read_only_key_reads_and_is_refused_on_every_write_route(tenantry):
    run = tenantry.run_id
    read_only = [
        {"key": f"ro-{run}-key", "read_only": True},
        {
            "key": f"ro-{run}-scoped",
            "role": "partner",
            "scope": {"store": "bakery"},
            "read_only": True,
        },
    ]
    # Every plugin that mounts routes is enabled, so each of its routes is reached.
    routed = contributions_of(build_plugin_manager()).route_handlers
    features = {name: {} for name in routed}
    features.update({"orders": ORDERS, "booking": RESTAURANT})
    tenantry.add_tenant("market", features=features, api={"keys": read_only})
    await tenantry.start()
    await tenantry.wait_state("market", "running")
    client = tenantry.client

    routes = _write_routes(build_plugin_routers(tenantry.runtime.pm))
    assert ("POST", "/api/tenants/{tenant_id:str}/orders/orders") in routes
    assert ("DELETE", "/api/tenants/{tenant_id:str}/booking/blocked-slots/{block_id:int}") in routes
    for header in ({"X-API-Key": f"ro-{run}-key"}, {"Authorization": f"Bearer ro-{run}-scoped"}):
        for method, template in routes:
            path = _concrete(template, "market")
            response = await client.request(method, path, json={}, headers=header)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["code"] == "auth.read_only", (method, path)
        reads = await client.get("/api/tenants/market/orders/orders", headers=header)
        assert reads.status_code == 200
        assert (
            await client.get("/api/tenants/market/orders/catalog", headers=header)
        ).status_code == 200
    assert await tenantry.sql(f'SELECT id FROM "t{run}_market".categories WHERE id = $1', "x") == []


async def test_a_partner_opening_the_webapp_acts_as_partner(market):
    client = market.h.client
    bread = await market.order("bakery", "rye")
    flowers = await market.order("flowers", "tulips")
    baker = market.webapp(BAKER)
    assert (await client.get(f"{market.base}/orders/{bread}", headers=baker)).status_code == 200
    assert (await client.get(f"{market.base}/orders/{flowers}", headers=baker)).status_code == 404
    moved = await client.post(
        f"{market.base}/orders/{bread}/status", json={"status": "preparing"}, headers=baker
    )
    assert moved.status_code == 200
    refused = await client.post(
        f"{market.base}/orders/{flowers}/status", json={"status": "preparing"}, headers=baker
    )
    assert refused.status_code == 404 and await market.status_of(flowers) == "pending"
    [last] = await market.h.sql(
        f'SELECT role, actor_id FROM "{market.schema}".order_history WHERE order_id = $1 ORDER BY id DESC LIMIT 1',
        bread,
    )
    assert last == {"role": "partner", "actor_id": BAKER}
    # A customer of no store stays a customer: someone else's order is not there.
    stranger = market.webapp(5999)
    assert (await client.get(f"{market.base}/orders/{bread}", headers=stranger)).status_code == 404


async def test_scoped_keys_of_one_tenant_do_not_open_another(market):
    client = market.h.client
    other = market.other
    await other.order("bakery", "rye")
    for name in ("admin", "bakery", "reports"):
        response = await client.get(f"{other.base}/orders", headers=market.key(name))
        assert response.status_code == 401, name
        assert (
            await client.get(f"{other.base}/orders", headers=other.key(name))
        ).status_code == 200


async def test_a_read_only_keys_web_session_is_refused_on_every_page_write(tenantry):
    """The web pages take a session signed in with an API key: read-only stays read-only there."""
    run = tenantry.run_id
    read_only = [
        {"key": f"ro-{run}-key", "read_only": True},
        {
            "key": f"ro-{run}-bakery",
            "role": "partner",
            "scope": {"store": "bakery"},
            "read_only": True,
        },
    ]
    paged = contributions_of(build_plugin_manager()).web_pages
    features = {name: {} for name in paged}
    features.update({"orders": ORDERS, "booking": RESTAURANT})
    config = tenantry.add_tenant("market", features=features, api={"keys": read_only})
    await tenantry.start()
    await tenantry.wait_state("market", "running")
    client = tenantry.client
    plugin_pages = tuple(f"/web/{{tenant_id:str}}/{name}/" for name in paged)
    routes = [
        route
        for route in _write_routes(build_web_routers(tenantry.runtime.pm))
        if route[1].startswith(plugin_pages)
    ]
    assert ("POST", "/web/{tenant_id:str}/booking/blocks") in routes
    assert ("POST", "/web/{tenant_id:str}/orders/orders/{order_id:int}/status") in routes

    for entry in read_only:
        signed_in = await client.post(
            "/web/market/signin", data={"key": entry["key"], "next": "/web/market/"}
        )
        assert signed_in.status_code == 303, signed_in.text
        session = {"Cookie": f"{SESSION_COOKIE}={signed_in.cookies[SESSION_COOKIE]}"}
        board = await client.get("/web/market/orders/partner/bakery/orders", headers=session)
        assert board.status_code == 200, board.text  # the session itself works
        for method, template in routes:
            path = _concrete(template, "market")
            response = await client.request(
                method, path, json={}, headers={**session, "X-Tenantry-Web": "1"}
            )
            assert response.status_code == 403, (entry["key"], method, path, response.text)
            assert response.json()["code"] == "auth.read_only", (method, path)
    schema = config["storage"]["schema"]
    assert await tenantry.sql(f'SELECT id FROM "{schema}".blocked_slots') == []


class Tally:
    """Records every ``grant_roles`` call: the user ids asked about, in order."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    @hookimpl
    def grant_roles(self, tenant: Any, user_id: int) -> None:
        self.asked.append(user_id)


async def test_the_actor_is_resolved_once_per_request(tenantry):
    """Auth guard, role guard, rate limit and handler share one resolution of the WebApp user."""
    tally = Tally()
    config = tenantry.add_tenant("market", features={"orders": ORDERS, "tally": {}})
    await tenantry.start(plugins=[("tally", tally)])
    await tenantry.wait_state("market", "running")
    market = Market(tenantry, config)
    order_id = await market.order("bakery", "rye")  # require_api_key_or_webapp, _ordering, limit
    assert tally.asked == [CUSTOMER]
    read = await tenantry.client.get(
        f"{market.base}/orders/{order_id}", headers=market.webapp(BAKER)
    )
    assert read.status_code == 200  # the partner's store: its role came from that one call
    assert tally.asked == [CUSTOMER, BAKER]
