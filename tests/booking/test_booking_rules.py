"""Booking rules through the API: closed days, minimum notice, buffers, blocked slots, cutoff."""

from __future__ import annotations

from _booking_support import add_restaurant, at, booking_body, future_day, schema

SOLO = [{"id": "solo", "seats": 4}]


async def _availability(tenantry, day, party_size=2):
    response = await tenantry.client.get(
        "/api/tenants/filin/booking/availability",
        params={"date": day.isoformat(), "party_size": party_size},
        headers=tenantry.api_headers("filin"),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _create(tenantry, start, **fields):
    return await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(start, **fields),
        headers=tenantry.api_headers("filin"),
    )


async def test_closed_dates_and_closed_weekdays(tenantry):
    closed = future_day(2)
    other = future_day(3)
    hours = {day: "12:00-23:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    del hours[("mon", "tue", "wed", "thu", "fri", "sat", "sun")[other.weekday()]]
    add_restaurant(tenantry, closed_dates=[closed.isoformat()], opening_hours=hours)
    await tenantry.start()
    for day in (closed, other):
        result = await _availability(tenantry, day)
        assert result["closed"] == "closed" and result["slots"] == []
        response = await _create(tenantry, at(day, "13:00"))
        assert response.status_code == 400 and response.json()["code"] == "booking.closed"
    assert (await _availability(tenantry, future_day(4)))["slots"]


async def test_minimum_notice(tenantry):
    add_restaurant(tenantry, min_notice_minutes=4 * 24 * 60)
    await tenantry.start()
    assert (await _availability(tenantry, future_day(2)))["slots"] == []
    response = await _create(tenantry, at(future_day(2), "13:00"))
    assert response.status_code == 400 and response.json()["code"] == "booking.too_soon"
    assert (await _availability(tenantry, future_day(6)))["slots"]


async def test_buffers_keep_tables_free_between_bookings(tenantry):
    config = add_restaurant(
        tenantry, tables=SOLO, buffer_before_minutes=15, buffer_after_minutes=30
    )
    await tenantry.start()
    day = future_day()
    assert (await _create(tenantry, at(day, "15:00"))).status_code == 201
    free = [s["local_time"] for s in (await _availability(tenantry, day))["slots"]]
    # 15:00-17:00 holds 14:45-17:30; a neighbour needs its own 15 before and 30 after:
    # it must end by 14:15 (starts 12:00 at the latest) or start at 17:45 or later (18:00)
    assert free[:2] == ["12:00", "18:00"]
    taken = await _create(tenantry, at(day, "17:30"))
    assert taken.status_code == 409 and taken.json()["code"] == "booking.slot_taken"
    assert taken.json()["alternatives"][0].startswith(f"{day.isoformat()}T15:00")  # 18:00 Moscow
    assert (await _create(tenantry, at(day, "18:00"))).status_code == 201
    [hold] = await tenantry.sql(
        f'SELECT starts_at, ends_at FROM "{schema(config)}".resource_holds ORDER BY starts_at LIMIT 1'
    )
    assert (hold["ends_at"] - hold["starts_at"]).total_seconds() == (15 + 120 + 30) * 60


async def test_blocked_slots_block_and_free_time(tenantry):
    config = add_restaurant(tenantry, tables=[*SOLO, {"id": "big", "seats": 8}])
    await tenantry.start()
    headers = tenantry.api_headers("filin")
    day = future_day()
    url = "/api/tenants/filin/booking/blocked-slots"
    block = await tenantry.client.post(
        url,
        json={
            "starts_at": at(day, "18:00").isoformat(),
            "ends_at": at(day, "20:00").isoformat(),
            "resource": "solo",
            "reason": "repairs",
        },
        headers=headers,
    )
    assert block.status_code == 201, block.text
    slot = next(
        s for s in (await _availability(tenantry, day))["slots"] if s["local_time"] == "19:00"
    )
    assert slot["resources"] == ["big"]
    assert (await _create(tenantry, at(day, "19:00"), table="solo")).status_code == 409

    # a whole-place block over an existing booking is refused, naming it
    booking = await _create(tenantry, at(day, "13:00"), table="big")
    whole = await tenantry.client.post(
        url,
        json={"starts_at": at(day, "12:00").isoformat(), "ends_at": at(day, "23:00").isoformat()},
        headers=headers,
    )
    assert whole.status_code == 409 and whole.json()["bookings"] == [booking.json()["id"]]
    assert len(await tenantry.sql(f'SELECT id FROM "{schema(config)}".blocked_slots')) == 1

    listed = await tenantry.client.get(url, params={"date": day.isoformat()}, headers=headers)
    assert [(b["resource"], b["reason"]) for b in listed.json()] == [("solo", "repairs")]
    assert (
        await tenantry.client.delete(f"{url}/{block.json()['id']}", headers=headers)
    ).status_code == 204
    assert (
        await tenantry.client.delete(f"{url}/{block.json()['id']}", headers=headers)
    ).status_code == 404
    assert (await _create(tenantry, at(day, "19:00"), table="solo")).status_code == 201
    bad = await tenantry.client.post(
        url,
        json={"starts_at": at(day, "20:00").isoformat(), "ends_at": at(day, "18:00").isoformat()},
        headers=headers,
    )
    assert bad.status_code == 400


async def test_cancelling_frees_the_table(tenantry):
    add_restaurant(tenantry, tables=SOLO)
    await tenantry.start()
    start = at(future_day(), "19:00")
    first = await _create(tenantry, start)
    assert (await _create(tenantry, start)).status_code == 409
    response = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{first.json()['id']}/status",
        json={"status": "cancelled"},
        headers=tenantry.api_headers("filin"),
    )
    assert response.status_code == 200
    assert (await _create(tenantry, start)).status_code == 201
