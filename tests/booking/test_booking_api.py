"""The booking HTTP API: availability, create, list, status, stats, bad input, tenants apart."""

from __future__ import annotations

from _booking_support import add_restaurant, at, booking_body, future_day, schema, utc_iso


async def test_create_then_list_and_availability(tenantry):
    config = add_restaurant(tenantry)
    await tenantry.start()
    day = future_day()
    headers = tenantry.api_headers("filin")

    response = await tenantry.client.get(
        "/api/tenants/filin/booking/availability", params={"date": day.isoformat(), "party_size": 2}, headers=headers
    )
    assert response.status_code == 200, response.text
    slots = response.json()["slots"]
    assert slots[0]["local_time"] == "12:00"
    assert slots[-1]["local_time"] == "21:00"  # 120-minute stay must end by 23:00
    assert slots[0]["resources"] == ["t1"]  # smallest table that seats 2

    start = at(day, "19:00")
    response = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings", json=booking_body(start, party_size=2), headers=headers
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
