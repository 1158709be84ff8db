"""Hostile inputs over HTTP: each is refused with a 4xx and a reason, and writes nothing.

Integers beyond PostgreSQL's int4/int8, NUL characters (PostgreSQL text
cannot hold U+0000), dates at the ends of the calendar, strings longer than
their column allows, and deeply nested YAML. And the booking rule that
availability and create refuse the same inputs. The hostile updates over the
webhook are tests/test_fuzz_inputs_webhook.py's; the tenants both run on,
tests/_fuzz_inputs_support.py's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _fuzz_inputs_support import start_tenants
from booking._booking_support import at, booking_body, future_day

BIGINT_MAX = 2**63 - 1
BEYOND_BIGINT = [BIGINT_MAX + 1, -(2**63) - 1, 2**70]
"""Just beyond int8 on both sides, and beyond 64 bits (ids, prices: bigint columns)."""
BEYOND_INTEGER = [2**31, -(2**31) - 1, *BEYOND_BIGINT]
"""Also just beyond int4 (party sizes, quantities, positions: integer columns)."""

BOOKING_TABLES = ("bookings", "booking_history", "resource_holds", "blocked_slots")
ORDERS_TABLES = ("orders", "order_items", "order_history", "categories", "items")


# ---------------------------------------------------------------- helpers


async def row_counts(tenantry: Any, configs: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Rows of every table a refused request could have written, per tenant."""
    counts: dict[str, int] = {}
    for tenant_id, config in configs.items():
        schema = config["storage"]["schema"]
        tables = ORDERS_TABLES if "orders" in config["features"] else BOOKING_TABLES
        for table in (*tables, "users"):
            [row] = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema}".{table}')
            counts[f"{tenant_id}.{table}"] = row["n"]
    return counts


def assert_refused(response: Any, what: str) -> dict[str, Any]:
    """A 4xx problem body with a code and a detail; return the body."""
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] and body["detail"], f"{what}: no reason in {body}"
    assert body["status"] == response.status_code
    return body


async def refuse_all(tenantry: Any, requests: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """Send ``(tenant, method, path, httpx kwargs)`` with the tenant's API key; each must be refused."""
    for tenant_id, method, path, kwargs in requests:
        plugin = "orders" if tenant_id == "market" else "booking"
        url = f"/api/tenants/{tenant_id}/{plugin}{path}"
        response = await tenantry.client.request(
            method, url, headers=tenantry.api_headers(tenant_id), **kwargs
        )
        assert_refused(response, f"{method} {url} {kwargs}")


def order(**fields: Any) -> dict[str, Any]:
    """A bakery pickup order body placed with the API key (customer 5001)."""
    body: dict[str, Any] = {
        "store_id": "bakery",
        "type": "pickup",
        "items": [{"item_id": 1, "quantity": 2}],
        "phone": "+79990001122",
        "customer_id": 5001,
    }
    body.update(fields)
    return body


# ---------------------------------------------------------------- HTTP


async def test_integers_beyond_int4_and_int8_are_refused_and_write_nothing(tenantry):
    configs = await start_tenants(tenantry)
    before = await row_counts(tenantry, configs)
    day = future_day()
    start = at(day, "19:00")
    requests: list[tuple[str, str, str, dict[str, Any]]] = []
    for number in BEYOND_INTEGER:
        requests += [
            (
                "filin",
                "GET",
                "/availability",
                {"params": {"date": day.isoformat(), "party_size": number}},
            ),
            ("filin", "POST", "/bookings", {"json": booking_body(start, party_size=number)}),
            (
                "market",
                "POST",
                "/orders",
                {"json": order(items=[{"item_id": 1, "quantity": number}])},
            ),
            (
                "market",
                "POST",
                "/categories",
                {"json": {"id": "buns", "store_id": "bakery", "name": "Buns", "position": number}},
            ),
            ("market", "PATCH", "/categories/bread", {"json": {"position": number}}),
        ]
    for number in BEYOND_BIGINT:
        requests += [
            ("filin", "GET", f"/bookings/{number}", {}),
            ("filin", "POST", f"/bookings/{number}/status", {"json": {"status": "cancelled"}}),
            ("filin", "DELETE", f"/blocked-slots/{number}", {}),
            ("market", "GET", f"/orders/{number}", {}),
            ("market", "GET", f"/orders/{number}/history", {}),
            ("market", "POST", f"/orders/{number}/status", {"json": {"status": "cancelled"}}),
            ("market", "PATCH", f"/items/{number}", {"json": {"name": "Bun"}}),
            ("market", "DELETE", f"/items/{number}", {}),
            ("market", "GET", "/orders", {"params": {"before": number}}),
            ("market", "POST", "/orders", {"json": order(items=[{"item_id": number}])}),
            ("market", "POST", "/orders", {"json": order(customer_id=number)}),
            (
                "market",
                "POST",
                "/items",
                {"json": {"category_id": "bread", "sku": "bun", "name": "Bun", "price": number}},
            ),
            (
                "market",
                "POST",
                "/orders/1/status",
                {"json": {"status": "cancelled", "role": "partner", "actor_id": number}},
            ),
        ]
    await refuse_all(tenantry, requests)
    assert await row_counts(tenantry, configs) == before

    # The boundary names the field where the API knows the column: positions are int4.
    response = await tenantry.client.post(
        "/api/tenants/market/orders/categories",
        json={"id": "buns", "store_id": "bakery", "name": "Buns", "position": 2**31},
        headers=tenantry.api_headers("market"),
    )
    body = assert_refused(response, "position over int4")
    assert body["code"] == "request.invalid" and "position" in body["detail"]
    # An id PostgreSQL cannot hold answers the same problem as any other refused value.
    response = await tenantry.client.get(
        f"/api/tenants/market/orders/orders/{BIGINT_MAX + 1}",
        headers=tenantry.api_headers("market"),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "request.value_out_of_range"
    assert "int64" in response.json()["detail"]


async def test_nul_characters_in_bodies_and_queries_are_refused_and_write_nothing(tenantry):
    configs = await start_tenants(tenantry)
    before = await row_counts(tenantry, configs)
    day = future_day()
    start, end = at(day, "19:00"), at(day, "20:00")
    block = {"starts_at": start.isoformat(), "ends_at": end.isoformat()}
    requests: list[tuple[str, str, str, dict[str, Any]]] = [
        ("filin", "POST", "/bookings", {"json": booking_body(start, customer_name="An\x00na")}),
        ("filin", "POST", "/bookings", {"json": booking_body(start, comment="window\x00seat")}),
        ("filin", "POST", "/bookings", {"json": booking_body(start, phone="+7999\x000001122")}),
        ("filin", "POST", "/bookings", {"json": booking_body(start, table="t\x001")}),
        ("filin", "POST", "/blocked-slots", {"json": {**block, "reason": "re\x00pair"}}),
        ("filin", "POST", "/blocked-slots", {"json": {**block, "resource": "t\x001"}}),
        ("filin", "GET", "/bookings", {"params": {"date": day.isoformat(), "status": "new\x00"}}),
        (
            "glow",
            "GET",
            "/availability",
            {"params": {"date": day.isoformat(), "service": "haircut\x00"}},
        ),
        (
            "glow",
            "POST",
            "/bookings",
            {"json": booking_body(start, service="haircut", staff="anna\x00")},
        ),
        ("market", "POST", "/orders", {"json": order(store_id="bakery\x00")}),
        ("market", "POST", "/orders", {"json": order(comment="no\x00nuts")}),
        ("market", "POST", "/orders", {"json": order(customer_name="Ol\x00eg")}),
        (
            "market",
            "POST",
            "/orders",
            {"json": order(store_id="bakery", type="delivery", address="Main\x00st")},
        ),
        ("market", "POST", "/orders/1/status", {"json": {"status": "cancelled", "reason": "\x00"}}),
        (
            "market",
            "POST",
            "/categories",
            {"json": {"id": "buns", "store_id": "bakery", "name": "Bu\x00ns"}},
        ),
        ("market", "PATCH", "/categories/bread", {"json": {"name": "Bre\x00ad"}}),
        ("market", "PATCH", "/categories/bre%00ad", {"json": {"name": "Bread"}}),
        (
            "market",
            "POST",
            "/items",
            {"json": {"category_id": "bread", "sku": "bun", "name": "Bu\x00n", "price": 100}},
        ),
        (
            "market",
            "POST",
            "/items",
            {
                "json": {
                    "category_id": "bread",
                    "sku": "bun",
                    "name": "Bun",
                    "price": 100,
                    "description": "so\x00ft",
                }
            },
        ),
        ("market", "PATCH", "/items/1", {"json": {"description": "\x00"}}),
        ("market", "GET", "/items", {"params": {"store": "bakery\x00"}}),
        ("market", "GET", "/catalog", {"params": {"store": "bakery\x00"}}),
        ("market", "GET", "/orders", {"params": {"store": "bakery\x00"}}),
    ]
    await refuse_all(tenantry, requests)
    assert await row_counts(tenantry, configs) == before
    # Where the rules know the field, the refusal names it.
    response = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(start, customer_name="An\x00na"),
        headers=tenantry.api_headers("filin"),
    )
    assert response.json()["code"] == "booking.customer_name"
    response = await tenantry.client.post(
        "/api/tenants/market/orders/orders",
        json=order(comment="no\x00nuts"),
        headers=tenantry.api_headers("market"),
    )
    assert response.json()["code"] == "orders.bad_text"


async def test_values_the_database_refuses_are_refused_first_and_write_nothing(tenantry):
    configs = await start_tenants(tenantry)
    before = await row_counts(tenantry, configs)
    requests: list[tuple[str, str, str, dict[str, Any]]] = []
    # Dates: year 0 and 10000 are not ISO 8601 dates Python reads; the first
    # and last days of years 1-9999 have no UTC bounds in Europe/Moscow.
    for day in ("0000-01-01", "10000-01-01", "2026-02-30", "0001-01-01", "9999-12-31"):
        for path in ("/bookings", "/stats", "/blocked-slots", "/availability"):
            requests.append(("filin", "GET", path, {"params": {"date": day, "party_size": 2}}))
    for starts_at in (
        "0000-01-01T12:00:00+00:00",
        "10000-01-01T12:00:00+00:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:00:00+00:00",
        "9999-12-31T23:59:59-14:00",
    ):
        body = {"starts_at": starts_at, "customer_name": "Anna", "phone": "+79990001122"}
        requests.append(("filin", "POST", "/bookings", {"json": body}))
        requests.append(("glow", "POST", "/bookings", {"json": {**body, "service": "haircut"}}))
    for starts_at, ends_at in (
        ("0001-01-01T00:00:00+14:00", "0001-01-01T01:00:00+14:00"),
        ("9999-12-31T23:00:00-14:00", "9999-12-31T23:30:00-14:00"),
        ("0000-01-01T00:00:00+00:00", "0000-01-01T01:00:00+00:00"),
    ):
        body = {"starts_at": starts_at, "ends_at": ends_at}
        requests.append(("filin", "POST", "/blocked-slots", {"json": body}))
    # categories.name is 1-100 characters in the database.
    requests += [
        (
            "market",
            "POST",
            "/categories",
            {"json": {"id": "buns", "store_id": "bakery", "name": "B" * 101}},
        ),
        ("market", "PATCH", "/categories/bread", {"json": {"name": "B" * 101}}),
        (
            "market",
            "POST",
            "/items",
            {"json": {"category_id": "bread", "sku": "bun", "name": "B" * 201, "price": 1}},
        ),
        (
            "filin",
            "POST",
            "/bookings",
            {"json": booking_body(at(future_day(), "19:00"), customer_name="A" * 101)},
        ),
    ]
    await refuse_all(tenantry, requests)
    assert await row_counts(tenantry, configs) == before

    headers = tenantry.api_headers("filin")
    far = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json={
            "starts_at": "9999-12-31T23:00:00+00:00",
            "customer_name": "A",
            "phone": "+79990001122",
        },
        headers=headers,
    )
    assert far.json()["code"] == "booking.too_far", "create answers as availability does"
    edge = await tenantry.client.get(
        "/api/tenants/filin/booking/stats", params={"date": "9999-12-31"}, headers=headers
    )
    assert edge.status_code == 400 and edge.json()["code"] == "booking.date_out_of_range"
    # The day before is still an ordinary (empty) day.
    inside = await tenantry.client.get(
        "/api/tenants/filin/booking/stats", params={"date": "9999-12-30"}, headers=headers
    )
    assert inside.status_code == 200 and inside.json()["bookings"] == 0


async def test_deeply_nested_yaml_upload_is_refused_without_a_tenant(tenantry):
    await tenantry.start()
    # Flow style: 5000 levels in 10 kB, deeper than PyYAML's parser can recurse.
    text = 'id: deep\nbot: {token: "3:deep"}\ntexts: {k: ' + "[" * 5000 + "]" * 5000 + "}\n"
    response = await tenantry.client.post(
        "/admin/tenants", content=text, headers=tenantry.admin_headers()
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error.startswith("<admin upload>:3:") and "nesting" in error, error
    assert not (tenantry.tenants_dir / "deep.yaml").exists()
    listed = (await tenantry.client.get("/admin/tenants", headers=tenantry.admin_headers())).json()
    assert "deep" not in str(listed)


# ---------------------------------------------------------------- booking rules


async def test_availability_and_create_refuse_the_same_inputs(tenantry):
    configs = await start_tenants(tenantry, notice={"min_notice_minutes": 3 * 24 * 60})
    schema = configs["filin"]["storage"]["schema"]
    headers = tenantry.api_headers("filin")
    base = "/api/tenants/filin/booking"
    day = future_day()

    async def availability(params: dict[str, Any], tenant_id: str = "filin") -> Any:
        return await tenantry.client.get(
            f"/api/tenants/{tenant_id}/booking/availability",
            params=params,
            headers=tenantry.api_headers(tenant_id),
        )

    async def create(body: dict[str, Any], tenant_id: str = "filin") -> Any:
        return await tenantry.client.post(
            f"/api/tenants/{tenant_id}/booking/bookings",
            json=body,
            headers=tenantry.api_headers(tenant_id),
        )

    # Party sizes: 0, negative, over max_party_size (12), over the column's 500.
    for size in (0, -1, 13, 501):
        assert_refused(
            await availability({"date": day.isoformat(), "party_size": size}),
            f"availability {size}",
        )
        assert_refused(
            await create(booking_body(at(day, "19:00"), party_size=size)), f"create {size}"
        )
    # Dates: beyond days_ahead (30), and in the past.
    for other in (day + timedelta(days=40), day - timedelta(days=10)):
        refused = assert_refused(
            await availability({"date": other.isoformat(), "party_size": 2}), str(other)
        )
        again = assert_refused(
            await create(booking_body(at(other, "19:00"), party_size=2)), str(other)
        )
        assert refused["code"] == again["code"], (refused, again)
    # A services place books one person: party size 2 is refused both ways.
    assert_refused(
        await availability({"date": day.isoformat(), "party_size": 2}, "glow"), "glow availability"
    )
    assert_refused(
        await create(booking_body(at(day, "12:00"), service="haircut", party_size=2), "glow"),
        "glow create",
    )

    # Times: create accepts exactly what availability offers on the slot grid.
    offered = (await availability({"date": day.isoformat(), "party_size": 2})).json()["slots"]
    offered_times = {slot["local_time"] for slot in offered}
    for off_grid in ("19:15", "11:30", "22:00", "23:30"):
        assert off_grid not in offered_times
        refused = assert_refused(
            await create(booking_body(at(day, off_grid), party_size=2)), off_grid
        )
        assert refused["code"] == "booking.not_a_slot"
    assert await tenantry.sql(f'SELECT id FROM "{schema}".bookings') == []
    for slot in (offered[0], offered[-1]):
        response = await create(
            {**booking_body(at(day, "12:00"), party_size=2), "starts_at": slot["starts_at"]}
        )
        assert response.status_code == 201, (slot, response.text)
    response = await tenantry.client.get(
        f"{base}/bookings", params={"date": day.isoformat()}, headers=headers
    )
    assert len(response.json()) == 2

    # Within the minimum notice: not offered, and refused. ``notice`` asks for
    # three days, so tomorrow is inside it whatever the time of day.
    tomorrow = future_day(1)
    offered = (await availability({"date": tomorrow.isoformat(), "party_size": 2}, "notice")).json()
    assert offered["slots"] == []
    refused = assert_refused(
        await create(booking_body(at(tomorrow, "19:00"), party_size=2), "notice"), "within notice"
    )
    assert refused["code"] == "booking.too_soon"
    later = future_day(5)
    offered = (await availability({"date": later.isoformat(), "party_size": 2}, "notice")).json()
    assert "19:00" in {slot["local_time"] for slot in offered["slots"]}
    response = await create(booking_body(at(later, "19:00"), party_size=2), "notice")
    assert response.status_code == 201, response.text
