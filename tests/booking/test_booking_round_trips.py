"""Round trips of one booking create through the API: what each request sends to PostgreSQL and Redis."""

from __future__ import annotations

from _booking_support import add_restaurant, at, booking_body, future_day, schema
from _round_trips import RoundTrips

from core.testing.updates import webapp_init_data


async def test_an_api_create_makes_four_postgres_and_three_redis_round_trips(tenantry, monkeypatch):
    config = add_restaurant(tenantry)
    await tenantry.start()
    day = future_day()
    headers = tenantry.api_headers("filin")
    url = "/api/tenants/filin/booking/bookings"
    # Warm-up: every statement of the path gets prepared (and cached) once.
    warm = await tenantry.client.post(
        url, json=booking_body(at(day, "12:00")), headers={**headers, "Idempotency-Key": "w"}
    )
    assert warm.status_code == 201, warm.text
    trips = RoundTrips(monkeypatch)

    response = await tenantry.client.post(
        url,
        json=booking_body(at(day, "19:00"), party_size=2),
        headers={**headers, "Idempotency-Key": "k"},
    )

    assert response.status_code == 201, response.text
    calls = trips.of_request("INSERT INTO bookings")
    # BEGIN with SET LOCAL search_path, resources + holds, the booking with its
    # holds and history, and the outbox row + NOTIFY with COMMIT and the
    # session reset (so the pool's release sends nothing).
    assert len(calls["postgres"]) == 4, "\n".join(calls["postgres"])
    assert calls["postgres"][0].startswith("BEGIN ISOLATION LEVEL READ COMMITTED;SET LOCAL")
    assert calls["postgres"][-1].startswith("INSERT INTO tenantry_outbox ")
    assert ";COMMIT;SELECT pg_advisory_unlock_all();" in calls["postgres"][-1]
    # The rate-limit script, the Idempotency-Key claim and the stored answer.
    assert len(calls["redis"]) == 3, "\n".join(calls["redis"])
    booking = response.json()
    assert booking["status"] == "confirmed"
    assert booking["resources"] == ["t1"]
    history = await tenantry.sql(
        f'SELECT from_status, to_status, actor_role FROM "{schema(config)}".booking_history'
        " WHERE booking_id = $1 ORDER BY id",
        booking["id"],
    )
    assert history == [
        {"from_status": None, "to_status": "pending", "actor_role": "admin"},
        {"from_status": "pending", "to_status": "confirmed", "actor_role": "system"},
    ]
    [row] = await tenantry.sql(
        f'SELECT status, created_at = updated_at AS same FROM "{schema(config)}".bookings'
        " WHERE id = $1",
        booking["id"],
    )
    assert row == {"status": "confirmed", "same": True}


async def test_a_customer_create_under_the_cap_adds_only_the_count(tenantry, monkeypatch):
    config = add_restaurant(tenantry)  # max_active_bookings_per_user: 2, the default
    await tenantry.start()
    day = future_day()
    user = {"id": 7001, "first_name": "Anna"}
    headers = {"X-Telegram-Init-Data": webapp_init_data(config["bot"]["token"], user)}
    url = "/api/tenants/filin/booking/bookings"
    warm = await tenantry.client.post(
        url, json=booking_body(at(day, "12:00")), headers={**headers, "Idempotency-Key": "w"}
    )
    assert warm.status_code == 201, warm.text
    trips = RoundTrips(monkeypatch)

    response = await tenantry.client.post(
        url, json=booking_body(at(day, "19:00")), headers={**headers, "Idempotency-Key": "k"}
    )

    assert response.status_code == 201, response.text
    calls = trips.of_request("INSERT INTO bookings")
    # BEGIN with SET LOCAL search_path and the user's lock, resources + holds,
    # the user's active bookings that day (a later statement than the lock),
    # the booking, and the outbox row + NOTIFY with COMMIT and the session reset.
    assert len(calls["postgres"]) == 5, "\n".join(calls["postgres"])
    assert "hashtextextended('tenantry:booking-cap:" in calls["postgres"][0]
    assert calls["postgres"][2].startswith("SELECT count(*) FROM bookings WHERE user_id = $1")
    assert calls["postgres"][-1].startswith("INSERT INTO tenantry_outbox ")
    assert ";COMMIT;SELECT pg_advisory_unlock_all();" in calls["postgres"][-1]
