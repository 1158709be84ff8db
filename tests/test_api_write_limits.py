"""Every write route of every plugin API takes the per-key write limit (``limits.api_writes``)."""

from __future__ import annotations

from test_actors_api import ORDERS, RESTAURANT, _concrete, _write_routes

from core.http.mounts import build_plugin_routers
from core.runtime.contributions import contributions_of
from core.runtime.plugins import build_plugin_manager
from core.web.mount import build_web_routers
from core.web.sessions import SESSION_COOKIE

# POSTs that change nothing the tenant owns, so they are not writes to limit: a
# count, and a realtime ticket (single-use, expiring in seconds), which a panel
# takes at every reconnect and which must not be refused then.
READS_BY_POST = {
    ("POST", "/api/tenants/{tenant_id:str}/broadcast/audiences/count"),
    ("POST", "/api/tenants/{tenant_id:str}/realtime/tickets"),
    ("POST", "/web/{tenant_id:str}/realtime/ticket"),
}


async def test_every_plugin_write_route_answers_429_past_the_keys_limit(tenantry):
    routes = _write_routes(build_plugin_routers(build_plugin_manager()))
    assert (
        "POST",
        "/api/tenants/{tenant_id:str}/broadcast/campaigns/{campaign_id:int}/pause",
    ) in routes
    routes = [route for route in routes if route not in READS_BY_POST]
    run = tenantry.run_id
    # One key per route: the limit counts per key, over all of that key's writes.
    keys = [f"wl-{run}-{n}" for n in range(len(routes))]
    routed = contributions_of(build_plugin_manager()).route_handlers
    features = {name: {} for name in routed}
    features.update({"orders": ORDERS, "booking": RESTAURANT})
    tenantry.add_tenant(
        "market", features=features, api={"keys": keys}, limits={"api_writes": "2/minute"}
    )
    await tenantry.start()
    await tenantry.wait_state("market", "running")

    unlimited = []
    for key, (method, template) in zip(keys, routes, strict=True):
        path = _concrete(template, "market")
        answers = [
            await tenantry.client.request(method, path, json={}, headers={"X-API-Key": key})
            for _ in range(3)
        ]
        last = answers[-1]
        if last.status_code != 429 or not last.headers.get("Retry-After"):
            unlimited.append((method, template, [a.status_code for a in answers]))
        else:
            assert last.json()["code"] == "ratelimit.exceeded", (method, template, last.text)
    assert unlimited == []


async def test_every_staff_page_write_takes_the_write_limit_of_its_sessions_key(tenantry):
    run = tenantry.run_id
    routed = contributions_of(build_plugin_manager()).web_pages
    features = {name: {} for name in routed}
    features.update({"orders": ORDERS, "booking": RESTAURANT})
    routes = [
        route
        for route in _write_routes(build_web_routers(build_plugin_manager()))
        if route[1].startswith(tuple(f"/web/{{tenant_id:str}}/{name}/" for name in routed))
        and route not in READS_BY_POST
    ]
    assert ("POST", "/web/{tenant_id:str}/booking/blocks") in routes
    # One key per route (the limit counts per key), and one more that stays under it.
    keys = [f"wl-{run}-{n}" for n in range(len(routes) + 1)]
    tenantry.add_tenant(
        "market", features=features, api={"keys": keys}, limits={"api_writes": "2/minute"}
    )
    await tenantry.start()
    await tenantry.wait_state("market", "running")
    client = tenantry.client

    async def session_of(key: str) -> dict[str, str]:
        signed_in = await client.post(
            "/web/market/signin", data={"key": key, "next": "/web/market/"}
        )
        assert signed_in.status_code == 303, signed_in.text
        cookie = signed_in.cookies[SESSION_COOKIE]
        return {"Cookie": f"{SESSION_COOKIE}={cookie}", "X-Tenantry-Web": "1"}

    unlimited = []
    for key, (method, template) in zip(keys, routes, strict=False):
        headers = await session_of(key)
        path = _concrete(template, "market")
        answers = [await client.request(method, path, json={}, headers=headers) for _ in range(3)]
        if answers[-1].status_code != 429 or not answers[-1].headers.get("Retry-After"):
            unlimited.append((method, template, [a.status_code for a in answers]))
    assert unlimited == []
    # Another key's session has a bucket of its own.
    method, template = routes[0]
    other = await client.request(
        method, _concrete(template, "market"), json={}, headers=await session_of(keys[-1])
    )
    assert other.status_code != 429, other.text
