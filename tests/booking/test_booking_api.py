"""The booking HTTP API: availability, create, list, status, stats, bad input, tenants apart."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from _booking_support import add_restaurant, at, booking_body, future_day, schema, utc_iso


async def test_create_then_list_and_availability(tenantry):
    config = add_restaurant(tenantry)
    await tenantry.start()
    day = future_day()
    headers = tenantry.api_headers("filin")

    response = await tenantry.client.get(
        "/api/tenants/filin/booking/availability",
        params={"date": day.isoformat(), "party_size": 2},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    slots = response.json()["slots"]
    assert slots[0]["local_time"] == "12:00"
    assert slots[-1]["local_time"] == "21:00"  # 120-minute stay must end by 23:00
    assert slots[0]["resources"] == ["t1"]  # smallest table that seats 2

    start = at(day, "19:00")
    response = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(start, party_size=2),
        headers=headers,
    )
    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["status"] == "confirmed"
    assert booking["resources"] == ["t1"]
    assert booking["starts_at"] == utc_iso(start).replace("+00:00", "Z")

    listed = await tenantry.client.get(
        "/api/tenants/filin/booking/bookings", params={"date": day.isoformat()}, headers=headers
    )
    assert [b["id"] for b in listed.json()] == [booking["id"]]
    rows = await tenantry.sql(f'SELECT status, party_size FROM "{schema(config)}".bookings')
    assert rows == [{"status": "confirmed", "party_size": 2}]
    history = await tenantry.sql(
        f'SELECT from_status, to_status, actor_role FROM "{schema(config)}".booking_history ORDER BY id'
    )
    assert history == [
        {"from_status": None, "to_status": "pending", "actor_role": "admin"},
        {"from_status": "pending", "to_status": "confirmed", "actor_role": "system"},
    ]


async def test_fifty_concurrent_creates_for_one_slot_book_it_once(tenantry):
    config = add_restaurant(tenantry, tables=[{"id": "solo", "seats": 4}])
    await tenantry.start()
    start = at(future_day(), "19:00")
    headers = tenantry.api_headers("filin")

    async def attempt(number: int):
        body = booking_body(start, party_size=2, customer_name=f"Guest {number}")
        return await tenantry.client.post(
            "/api/tenants/filin/booking/bookings", json=body, headers=headers
        )

    responses = await asyncio.gather(*(attempt(n) for n in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49, statuses
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert body["code"] == "booking.slot_taken"
            assert body["alternatives"], body
            assert utc_iso(start) not in body["alternatives"]
    rows = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".bookings')
    holds = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".resource_holds')
    assert rows == [{"n": 1}] and holds == [{"n": 1}]


async def test_idempotent_retry_returns_the_first_booking(tenantry):
    config = add_restaurant(tenantry)
    await tenantry.start()
    body = booking_body(at(future_day(), "13:00"), party_size=2)
    headers = {**tenantry.api_headers("filin"), "Idempotency-Key": "order-7"}
    first = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings", json=body, headers=headers
    )
    second = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings", json=body, headers=headers
    )
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".bookings') == [
        {"n": 1}
    ]
    other = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings", json={**body, "party_size": 3}, headers=headers
    )
    assert other.status_code == 422


async def test_illegal_transition_is_409_with_allowed_states(tenantry):
    add_restaurant(tenantry)
    await tenantry.start()
    headers = tenantry.api_headers("filin")
    created = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(at(future_day(), "13:00")),
        headers=headers,
    )
    booking_id = created.json()["id"]
    url = f"/api/tenants/filin/booking/bookings/{booking_id}/status"
    response = await tenantry.client.post(url, json={"status": "completed"}, headers=headers)
    assert response.status_code == 409
    assert response.json()["current"] == "confirmed"
    assert response.json()["allowed"] == ["seated", "cancelled", "no_show"]
    response = await tenantry.client.post(url, json={"status": "teleported"}, headers=headers)
    assert (
        response.status_code == 400 and "unknown status" in response.json()["detail"]
    )  # core: unknown target is bad input
    response = await tenantry.client.post(
        url, json={"status": "seated", "comment": "table by the window"}, headers=headers
    )
    assert response.status_code == 200 and response.json()["status"] == "seated"


async def test_stats_aggregate_one_day(tenantry):
    add_restaurant(tenantry)
    await tenantry.start()
    headers = tenantry.api_headers("filin")
    day = future_day()
    ids = []
    for hhmm, party in (("12:00", 2), ("12:00", 4), ("15:00", 3)):
        response = await tenantry.client.post(
            "/api/tenants/filin/booking/bookings",
            json=booking_body(at(day, hhmm), party_size=party),
            headers=headers,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{ids[0]}/status",
        json={"status": "no_show"},
        headers=headers,
    )
    await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{ids[1]}/status",
        json={"status": "cancelled"},
        headers=headers,
    )
    response = await tenantry.client.get(
        "/api/tenants/filin/booking/stats", params={"date": day.isoformat()}, headers=headers
    )
    assert response.json() == {
        "date": day.isoformat(),
        "bookings": 3,
        "covers": 3,
        "no_shows": 1,
        "per_status": {"confirmed": 1, "cancelled": 1, "no_show": 1},
    }
    filtered = await tenantry.client.get(
        "/api/tenants/filin/booking/bookings",
        params={"date": day.isoformat(), "status": ["cancelled", "no_show"]},
        headers=headers,
    )
    assert sorted(b["id"] for b in filtered.json()) == sorted(ids[:2])


async def test_bad_input_is_a_clear_4xx_and_writes_nothing(tenantry):
    config = add_restaurant(tenantry)
    await tenantry.start()
    headers = tenantry.api_headers("filin")
    url = "/api/tenants/filin/booking/bookings"
    day = future_day()
    past = date.today() - timedelta(days=3)
    cases = [
        (booking_body(at(past, "13:00")), "booking.past"),
        (booking_body(at(day, "13:00"), table="t99"), "booking.unknown_table"),
        (booking_body(at(day, "13:00"), party_size=13), "booking.party_size"),
        (booking_body(at(day, "13:00"), party_size=9), "booking.party_size"),
        (booking_body(at(day, "13:00"), party_size=3, table="t1"), "booking.party_size"),
        (booking_body(at(day, "13:10")), "booking.not_a_slot"),
        (booking_body(at(day, "22:00")), "booking.not_a_slot"),  # the stay would end after closing
        (booking_body(at(day, "13:00"), phone="call me"), "booking.phone"),
        (booking_body(at(day, "13:00"), customer_name="  "), "booking.customer_name"),
        (booking_body(at(day, "13:00"), service="haircut"), "booking.wrong_kind"),
        (
            {**booking_body(at(day, "13:00")), "starts_at": f"{day.isoformat()}T13:00:00"},
            "booking.starts_at",
        ),
        ({**booking_body(at(day, "13:00")), "party_size": "two"}, "request.invalid"),
        ({**booking_body(at(day, "13:00")), "surprise": 1}, "request.invalid"),
        ({"customer_name": "Anna"}, "request.invalid"),
    ]
    for body, code in cases:
        response = await tenantry.client.post(url, json=body, headers=headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == code, (body, response.json())
        assert response.json()["detail"]
    response = await tenantry.client.post(
        url, content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == "request.malformed_json"
    response = await tenantry.client.get(
        "/api/tenants/filin/booking/availability",
        params={"date": past.isoformat()},
        headers=headers,
    )
    assert response.status_code == 400 and response.json()["code"] == "booking.past"
    response = await tenantry.client.get(
        "/api/tenants/filin/booking/availability", params={"date": "31-12-2030"}, headers=headers
    )
    assert response.status_code == 400
    response = await tenantry.client.get(
        "/api/tenants/filin/booking/availability",
        params={"date": (day + timedelta(days=60)).isoformat()},
        headers=headers,
    )
    assert response.status_code == 400 and response.json()["code"] == "booking.too_far"
    response = await tenantry.client.get(
        "/api/tenants/filin/booking/bookings/999999", headers=headers
    )
    assert response.status_code == 404
    for table in ("bookings", "resource_holds", "booking_history"):
        assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".{table}') == [
            {"n": 0}
        ], table


async def test_a_second_tenant_cannot_see_the_first_ones_bookings(tenantry):
    add_restaurant(tenantry, "filin")
    add_restaurant(tenantry, "lodka")
    await tenantry.start()
    created = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(at(future_day(), "13:00")),
        headers=tenantry.api_headers("filin"),
    )
    booking_id = created.json()["id"]
    day = future_day().isoformat()
    assert (
        await tenantry.client.get(
            f"/api/tenants/lodka/booking/bookings/{booking_id}",
            headers=tenantry.api_headers("lodka"),
        )
    ).status_code == 404
    listed = await tenantry.client.get(
        "/api/tenants/lodka/booking/bookings",
        params={"date": day},
        headers=tenantry.api_headers("lodka"),
    )
    assert listed.status_code == 200 and listed.json() == []
    # filin's key does not open lodka, and lodka's key does not open filin
    wrong = await tenantry.client.get(
        "/api/tenants/lodka/booking/bookings",
        params={"date": day},
        headers=tenantry.api_headers("filin"),
    )
    assert wrong.status_code == 401
    wrong = await tenantry.client.get(
        f"/api/tenants/filin/booking/bookings/{booking_id}", headers=tenantry.api_headers("lodka")
    )
    assert wrong.status_code == 401
    # lodka's own table t1 is still free at that time
    free = await tenantry.client.get(
        "/api/tenants/lodka/booking/availability",
        params={"date": day, "party_size": 2},
        headers=tenantry.api_headers("lodka"),
    )
    assert next(s for s in free.json()["slots"] if s["local_time"] == "13:00")["resources"] == [
        "t1"
    ]


async def test_tenant_without_booking_gets_404(tenantry):
    tenantry.add_tenant("plain")
    await tenantry.start()
    response = await tenantry.client.get(
        "/api/tenants/plain/booking/availability",
        params={"date": future_day().isoformat()},
        headers=tenantry.api_headers("plain"),
    )
    assert response.status_code == 404
