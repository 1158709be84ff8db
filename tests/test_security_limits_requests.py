"""Limits of single requests: the webhook before the body, WebApp init data, idempotency keys.

The webhook answers refusals before reading a body; WebApp init data has
clock limits at both ends; idempotency keys are neither locked by a crash
nor shared between customers.
"""

from __future__ import annotations

import asyncio
import time

from _security_limits_support import (
    ANNA,
    BOOKINGS,
    IVAN,
    SHOP,
    Sleeper,
    _rye,
    add_restaurant,
    at,
    booking_body,
    bot_id,
    future_day,
    webapp,
)

# ---------------------------------------------------------------- webhook before the body


async def _raw_request(url: str, head: str) -> tuple[bytes, bytes]:
    """Send only ``head`` (request line and headers); return the response and what follows it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF: the server closed the connection
        return response, rest
    finally:
        writer.close()


async def test_webhook_refuses_unknown_tenants_and_wrong_secrets_before_the_body(tenantry, bot_api):
    config = tenantry.add_tenant("filin")
    await tenantry.start()

    def head(tenant_id: str, secret: str) -> str:
        return (
            f"POST /webhook/{tenant_id} HTTP/1.1\r\nHost: test\r\n"
            "Content-Type: application/json\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\n"
            f"Content-Length: {1024 * 1024}\r\n\r\n"
        )

    wrong, rest = await _raw_request(tenantry.url, head("filin", "wrong"))
    assert wrong.startswith(b"HTTP/1.1 401"), wrong
    assert b"X-Telegram-Bot-Api-Secret-Token" in rest
    unknown, rest = await _raw_request(tenantry.url, head("nobody", "wrong"))
    assert unknown.startswith(b"HTTP/1.1 404"), unknown
    assert b"nobody" in rest
    # A declared body over the limit is refused from its Content-Length, unread.
    big = head("filin", tenantry.secret("filin")).replace(f"{1024 * 1024}", f"{1024 * 1024 + 1}")
    too_big, _ = await _raw_request(tenantry.url, big)
    assert too_big.startswith(b"HTTP/1.1 413"), too_big
    assert bot_api.calls("sendMessage", bot_id=bot_id(config)) == []


# ---------------------------------------------------------------- WebApp init data


async def _at_second_start() -> int:
    """Now in whole seconds, just after a second began, so a request sent at once is
    checked within the same second (a clock alignment, not a wait for an outcome)."""
    fraction = time.time() % 1
    if fraction > 0.3:
        await asyncio.sleep(1.01 - fraction)
    return int(time.time())


async def test_init_data_clock_limits_at_the_boundaries(tenantry):
    config = add_restaurant(tenantry)  # webapp.max_age_seconds left at its default
    await tenantry.start()
    assert tenantry.runtime.registry.get("filin").config.webapp.max_age_seconds == 3600

    async def status(offset: int) -> int:
        now = await _at_second_start()
        headers = webapp(config, ANNA, auth_date=now + offset)
        response = await tenantry.client.get(
            "/api/tenants/filin/booking/my-bookings", headers=headers
        )
        return response.status_code

    # Older than an hour: refused; exactly an hour or less: accepted.
    assert [await status(-3599), await status(-3600), await status(-3601)] == [200, 200, 401]
    # In the future: up to 30 s of clock skew is accepted, more is refused.
    assert [await status(29), await status(30), await status(31)] == [200, 200, 401]
    now = await _at_second_start()
    refused = await tenantry.client.get(
        "/api/tenants/filin/booking/my-bookings",
        headers=webapp(config, ANNA, auth_date=now + 3600),
    )
    assert refused.status_code == 401 and "future" in refused.json()["detail"]


# ---------------------------------------------------------------- idempotency


async def test_a_key_left_pending_is_retryable_after_the_pending_ttl(tenantry):
    tenantry.add_tenant("filin", features={"sleeper": {}})
    sleeper = Sleeper()
    await tenantry.start(plugins=[("sleeper", sleeper)])
    headers = {**tenantry.api_headers("filin"), "Idempotency-Key": "k-1"}
    url = "/api/tenants/filin/sleeper/once"
    stuck = asyncio.create_task(tenantry.client.post(url, json={"n": 1}, headers=headers))
    await asyncio.wait_for(sleeper.first_started.wait(), 10)
    in_flight = await tenantry.client.post(url, json={"n": 1}, headers=headers)
    assert in_flight.status_code == 409, in_flight.text
    # The stuck request never finishes, as after a crash; its pending mark expires.
    deadline = time.monotonic() + 15
    while True:
        retry = await tenantry.client.post(url, json={"n": 1}, headers=headers)
        if retry.status_code != 409:
            break
        assert time.monotonic() < deadline, "the pending key was never released"
        await asyncio.sleep(0.2)
    assert retry.status_code == 201 and retry.json() == {"run": 2}
    assert "Idempotent-Replayed" not in retry.headers
    # The late first request gets its own answer but does not replace the stored one.
    sleeper.release.set()
    late = await stuck
    assert late.status_code == 201 and late.json() == {"run": 1}
    replay = await tenantry.client.post(url, json={"n": 1}, headers=headers)
    assert replay.json() == {"run": 2} and replay.headers["Idempotent-Replayed"] == "true"
    assert sleeper.runs == 2


async def test_two_customers_with_one_idempotency_key_each_get_their_own_answer(tenantry):
    config = add_restaurant(tenantry)
    await tenantry.start()
    body = booking_body(at(future_day(), "19:00"))
    answers = []
    for user in (ANNA, IVAN):
        headers = {**webapp(config, user), "Idempotency-Key": "same-key"}
        answers.append(await tenantry.client.post(BOOKINGS, json=body, headers=headers))
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert [a.json()["user_id"] for a in answers] == [7001, 7002]
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert all("Idempotent-Replayed" not in a.headers for a in answers)


async def test_an_api_key_and_a_customer_with_one_key_each_get_their_own_answer(tenantry):
    config = tenantry.add_tenant("shop", features={"orders": SHOP})
    await tenantry.start()
    rye = await _rye(tenantry, config)
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "items": [{"item_id": rye}],
        "phone": "+79990001122",
    }
    url = "/api/tenants/shop/orders/orders"
    by_staff = await tenantry.client.post(
        url,
        json={**body, "customer_id": ANNA["id"], "customer_name": "Anna"},
        headers={**tenantry.api_headers("shop"), "Idempotency-Key": "k"},
    )
    by_anna = await tenantry.client.post(
        url, json=body, headers={**webapp(config, ANNA), "Idempotency-Key": "k"}
    )
    assert [by_staff.status_code, by_anna.status_code] == [201, 201], by_anna.text
    assert by_staff.json()["id"] != by_anna.json()["id"]
    assert "Idempotent-Replayed" not in by_anna.headers
