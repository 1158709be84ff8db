"""Telegram WebApp callers: valid, forged and expired init data; acting as that user only."""

from __future__ import annotations

import time

from _booking_support import add_restaurant, at, booking_body, future_day, schema

from core.testing.updates import webapp_init_data

ANNA = {"id": 7001, "first_name": "Anna"}
IVAN = {"id": 7002, "first_name": "Ivan"}


def _webapp(config, user, **kwargs):
    return {"X-Telegram-Init-Data": webapp_init_data(config["bot"]["token"], user, **kwargs)}


async def test_webapp_user_books_and_sees_only_their_own(tenantry):
    config = add_restaurant(tenantry, webapp={"max_age_seconds": 3600})
    await tenantry.start()
    day = future_day()
    anna = _webapp(config, ANNA)
    free = await tenantry.client.get(
        "/api/tenants/filin/booking/availability",
        params={"date": day.isoformat(), "party_size": 2},
        headers=anna,
    )
    assert free.status_code == 200 and free.json()["slots"]
    created = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(at(day, "19:00"), party_size=2),
        headers=anna,
    )
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["user_id"] == 7001 and booking["source"] == "webapp"

    mine = await tenantry.client.get("/api/tenants/filin/booking/my-bookings", headers=anna)
    assert [b["id"] for b in mine.json()] == [booking["id"]]
    ivan = _webapp(config, IVAN)
    assert (
        await tenantry.client.get("/api/tenants/filin/booking/my-bookings", headers=ivan)
    ).json() == []
    assert (
        await tenantry.client.get(
            f"/api/tenants/filin/booking/bookings/{booking['id']}", headers=ivan
        )
    ).status_code == 404
    stolen = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{booking['id']}/status",
        json={"status": "cancelled"},
        headers=ivan,
    )
    assert stolen.status_code == 404
    # customers may not take admin moves, and may not list everyone's bookings
    seated = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{booking['id']}/status",
        json={"status": "seated"},
        headers=anna,
    )
    assert seated.status_code == 409 and seated.json()["allowed"] == ["cancelled"]
    listing = await tenantry.client.get(
        "/api/tenants/filin/booking/bookings", params={"date": day.isoformat()}, headers=anna
    )
    assert listing.status_code == 401
    cancelled = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{booking['id']}/status",
        json={"status": "cancelled"},
        headers=anna,
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_forged_and_expired_init_data_are_refused(tenantry):
    config = add_restaurant(tenantry, webapp={"max_age_seconds": 3600})
    await tenantry.start()
    body = booking_body(at(future_day(), "19:00"))
    url = "/api/tenants/filin/booking/bookings"

    forged = webapp_init_data("999:not-the-token", ANNA)
    response = await tenantry.client.post(url, json=body, headers={"X-Telegram-Init-Data": forged})
    assert response.status_code == 401 and "signature" in response.json()["detail"]

    tampered = webapp_init_data(config["bot"]["token"], ANNA).replace("7001", "7002")
    response = await tenantry.client.post(
        url, json=body, headers={"X-Telegram-Init-Data": tampered}
    )
    assert response.status_code == 401

    expired = _webapp(config, ANNA, auth_date=int(time.time()) - 7200)
    response = await tenantry.client.post(url, json=body, headers=expired)
    assert response.status_code == 401 and "expired" in response.json()["detail"]

    assert (await tenantry.client.post(url, json=body)).status_code == 401
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".bookings') == [
        {"n": 0}
    ]
