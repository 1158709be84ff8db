"""Every write route of every plugin API takes the per-key write limit (``limits.api_writes``)."""

from __future__ import annotations

from test_actors_api import ORDERS, RESTAURANT, _concrete, _write_routes

from core.http.mounts import build_plugin_routers
from core.runtime.contributions import contributions_of
from core.runtime.plugins import build_plugin_manager

# POSTs that change nothing the tenant owns, so they are not writes to limit: a
# count, and a realtime ticket (single-use, expiring in seconds), which a panel
# takes at every reconnect and which must not be refused then.
READS_BY_POST = {
    ("POST", "/api/tenants/{tenant_id:str}/broadcast/audiences/count"),
    ("POST", "/api/tenants/{tenant_id:str}/realtime/tickets"),
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
