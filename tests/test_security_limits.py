"""Limits that keep one tenant, user or key from starving the rest.

Rate limits per WebApp user, API key and bot user; caps of active bookings
and orders per customer; the per-tenant database connection cap; the webhook
answering refusals before reading a body; WebApp init-data clock limits;
idempotency keys that a crash cannot lock and that never cross customers.
The HTTP server's timeouts and concurrency limit: ``tests/test_security_http.py``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from litestar import Request, Response, post
from litestar.params import JSONBody

from core import hookimpl
from core.http.auth import TenantDep, require_api_key_or_webapp
from core.http.idempotency import idempotent_response
from core.testing.updates import webapp_init_data

MOSCOW = ZoneInfo("Europe/Moscow")
ANNA = {"id": 7001, "first_name": "Anna"}
IVAN = {"id": 7002, "first_name": "Ivan"}
ADMIN = 900000001  # the harness's default bot.admins
BOOKINGS = "/api/tenants/filin/booking/bookings"


# ---------------------------------------------------------------- helpers


def restaurant(**overrides: Any) -> dict[str, Any]:
    """A restaurant with enough tables that times, not tables, run out first."""
    block: dict[str, Any] = {
        "kind": "tables",
        "tables": [{"id": f"t{n}", "seats": 4} for n in range(1, 9)],
        "opening_hours": dict.fromkeys(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "10:00-23:00"
        ),
        "slot_step_minutes": 30,
        "stay_minutes": 60,
        "min_notice_minutes": 60,
        "days_ahead": 30,
    }
    block.update(overrides)
    return block


def add_restaurant(tenantry: Any, tenant_id: str = "filin", **fields: Any) -> dict[str, Any]:
    booking = fields.pop("booking", {})
    return tenantry.add_tenant(
        tenant_id, timezone="Europe/Moscow", features={"booking": restaurant(**booking)}, **fields
    )


def future_day(days: int = 3) -> date:
    return datetime.now(MOSCOW).date() + timedelta(days=days)


def at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)


def booking_body(start: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "starts_at": start.isoformat(),
        "customer_name": "Anna",
        "phone": "+79990001122",
        "party_size": 2,
        **fields,
    }


def webapp(config: dict[str, Any], user: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return {"X-Telegram-Init-Data": webapp_init_data(config["bot"]["token"], user, **kwargs)}


def bot_id(config: dict[str, Any]) -> int:
    return int(config["bot"]["token"].split(":")[0])


def schema(config: dict[str, Any]) -> str:
    return config["storage"]["schema"]


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    body = response.json()
    assert body["status"] == 429 and body["code"] == "ratelimit.exceeded"
    assert body["retry_after"] == retry_after and "limit" in body["detail"]


# ---------------------------------------------------------------- rate limits


async def test_webapp_user_flooding_creates_gets_429_while_another_user_books(tenantry):
    config = add_restaurant(
        tenantry,
        limits={"webapp_writes": "3/minute"},
        booking={"max_active_bookings_per_user": 10},
    )
    await tenantry.start()
    day = future_day()
    anna = webapp(config, ANNA)
    times = ["12:00", "13:00", "14:00", "15:00", "16:00"]
    answers = [
        await tenantry.client.post(BOOKINGS, json=booking_body(at(day, hhmm)), headers=anna)
        for hhmm in times
    ]
    assert [a.status_code for a in answers[:3]] == [201, 201, 201], [a.text for a in answers]
    for refused in answers[3:]:
        assert_rate_limited(refused)
    ivan = await tenantry.client.post(
        BOOKINGS,
        json=booking_body(at(day, "12:00"), customer_name="Ivan"),
        headers=webapp(config, IVAN),
    )
    assert ivan.status_code == 201, ivan.text
    # Reads are not writes: Anna still sees her bookings.
    mine = await tenantry.client.get("/api/tenants/filin/booking/my-bookings", headers=anna)
    assert mine.status_code == 200 and len(mine.json()) == 3
    rows = await tenantry.sql(
        f'SELECT user_id, count(*) AS n FROM "{schema(config)}".bookings GROUP BY 1 ORDER BY 1'
    )
    assert rows == [{"user_id": 7001, "n": 3}, {"user_id": 7002, "n": 1}]
    # Every counter lives under the tenant's Redis prefix.
    prefix = config["storage"]["redis_prefix"]
    keys = [k async for k in tenantry.runtime.redis.scan_iter(match=f"{prefix}ratelimit*")]
    assert keys


async def test_api_key_over_its_limit_gets_429(tenantry):
    config = add_restaurant(tenantry, limits={"api_writes": "2/minute"})
    other = add_restaurant(tenantry, "glow", limits={"api_writes": "2/minute"})
    await tenantry.start()
    day = future_day()
    headers = tenantry.api_headers("filin")
    answers = [
        await tenantry.client.post(BOOKINGS, json=booking_body(at(day, hhmm)), headers=headers)
        for hhmm in ("12:00", "13:00", "14:00")
    ]
    assert [a.status_code for a in answers[:2]] == [201, 201], [a.text for a in answers]
    assert_rate_limited(answers[2])
    # A status change is a write too.
    booking_id = answers[0].json()["id"]
    moved = await tenantry.client.post(
        f"{BOOKINGS}/{booking_id}/status", json={"status": "cancelled"}, headers=headers
    )
    assert_rate_limited(moved)
    # Reads of the same key go on, and another tenant's key has its own budget.
    listed = await tenantry.client.get(BOOKINGS, params={"date": day.isoformat()}, headers=headers)
    assert listed.status_code == 200 and len(listed.json()) == 2
    glow = await tenantry.client.post(
        "/api/tenants/glow/booking/bookings",
        json=booking_body(at(day, "12:00")),
        headers=tenantry.api_headers("glow"),
    )
    assert glow.status_code == 201, glow.text
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".bookings') == [
        {"n": 2}
    ]
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(other)}".bookings') == [{"n": 1}]


async def test_bot_user_flooding_a_writing_command_gets_the_polite_message(
    tenantry, updates, bot_api
):
    config = add_restaurant(tenantry, locale="ru", limits={"bot_writes": "2/minute"})
    await tenantry.start()
    day = future_day()
    for hhmm in ("10:00-11:00", "11:00-12:00", "12:00-13:00"):
        response = await tenantry.post_update(
            "filin", updates.command("block", f"{day.isoformat()} {hhmm}", user_id=ADMIN)
        )
        assert response.status_code == 200, response.text
    replies = [c.params["text"] for c in bot_api.calls("sendMessage", bot_id=bot_id(config))]
    assert len(replies) == 3, replies
    assert "Слишком много действий" in replies[2] and "с" in replies[2]
    assert not any("Слишком много" in r for r in replies[:2])
    blocks = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".blocked_slots')
    assert blocks == [{"n": 2}]
    # A customer's Cancel button spends their own budget, not the admin's.
    from plugins.booking import keyboards as kb

    press = updates.callback_query(kb.CancelBooking(booking_id=424242).pack(), user_id=ANNA["id"])
    assert (await tenantry.post_update("filin", press)).status_code == 200
    answers = bot_api.calls("answerCallbackQuery", bot_id=bot_id(config))
    assert len(answers) == 1 and "Слишком много" not in (answers[0].params.get("text") or "")
    [outdated] = bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=ANNA["id"])
    assert "Слишком много" not in outdated.params["text"]


async def test_bot_callback_flood_is_answered_with_an_alert(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, limits={"bot_writes": "1/minute"})
    await tenantry.start()
    from plugins.booking import keyboards as kb

    data = kb.CancelBooking(booking_id=424242).pack()
    for _ in range(2):
        response = await tenantry.post_update(
            "filin", updates.callback_query(data, user_id=ANNA["id"])
        )
        assert response.status_code == 200
    answers = bot_api.calls("answerCallbackQuery", bot_id=bot_id(config))
    assert len(answers) == 2
    assert "too often" not in (answers[0].params.get("text") or "")
    assert "too often" in answers[1].params["text"] and answers[1].params["show_alert"] is True


# ---------------------------------------------------------------- caps per customer


async def test_concurrent_creates_by_one_user_cannot_exceed_the_booking_cap(tenantry):
    config = add_restaurant(tenantry, limits={"webapp_writes": "100/minute"})
    await tenantry.start()
    day = future_day()
    anna = webapp(config, ANNA)
    times = ["12:00", "13:00", "14:00", "15:00", "16:00", "17:00"]
    answers = await asyncio.gather(
        *(
            tenantry.client.post(BOOKINGS, json=booking_body(at(day, hhmm)), headers=anna)
            for hhmm in times
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201, 409, 409, 409, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "booking.too_many_bookings" and "2" in refused["detail"]
    rows = await tenantry.sql(f'SELECT id FROM "{schema(config)}".bookings WHERE user_id = 7001')
    assert len(rows) == 2
    # The cap is per day, and a cancelled booking no longer counts.
    other_day = await tenantry.client.post(
        BOOKINGS, json=booking_body(at(future_day(4), "12:00")), headers=anna
    )
    assert other_day.status_code == 201, other_day.text
    cancelled = await tenantry.client.post(
        f"{BOOKINGS}/{rows[0]['id']}/status", json={"status": "cancelled"}, headers=anna
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await tenantry.client.post(BOOKINGS, json=booking_body(at(day, "18:00")), headers=anna)
    assert again.status_code == 201, again.text
    # Staff bookings through the API key carry no customer and have no cap.
    for hhmm in ("19:00", "20:00", "21:00"):
        staff = await tenantry.client.post(
            BOOKINGS, json=booking_body(at(day, hhmm)), headers=tenantry.api_headers("filin")
        )
        assert staff.status_code == 201, staff.text


SHOP = {
    "stores": [{"id": "bakery", "name": "Bakery", "pickup": True}],
    "categories": [{"id": "bread", "store": "bakery", "name": "Bread"}],
    "items": [{"sku": "rye", "store": "bakery", "category": "bread", "name": "Rye", "price": 9000}],
    "max_active_orders_per_customer": 2,
}


async def _rye(tenantry: Any, config: dict[str, Any]) -> int:
    [row] = await tenantry.sql(f'SELECT id FROM "{schema(config)}".items')
    return row["id"]


async def test_concurrent_orders_by_one_customer_cannot_exceed_the_orders_cap(tenantry):
    config = tenantry.add_tenant("shop", features={"orders": SHOP})
    await tenantry.start()
    rye = await _rye(tenantry, config)
    anna = webapp(config, ANNA)
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "items": [{"item_id": rye}],
        "phone": "+79990001122",
    }
    answers = await asyncio.gather(
        *(
            tenantry.client.post("/api/tenants/shop/orders/orders", json=body, headers=anna)
            for _ in range(5)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409], [
        a.text for a in answers
    ]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "orders.too_many_orders"
    assert "2" in refused["detail"] and "active orders" in refused["detail"]
    # Cancelling one frees a place.
    first = next(a for a in answers if a.status_code == 201).json()
    cancelled = await tenantry.client.post(
        f"/api/tenants/shop/orders/orders/{first['id']}/status",
        json={"status": "cancelled"},
        headers=anna,
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await tenantry.client.post("/api/tenants/shop/orders/orders", json=body, headers=anna)
    assert again.status_code == 201, again.text
    rows = await tenantry.sql(
        f'SELECT id, status FROM "{schema(config)}".orders WHERE customer_id = 7001 ORDER BY id'
    )
    # Which of the two concurrent creates got the lower id is not fixed.
    assert sorted(r["status"] for r in rows) == ["cancelled", "pending", "pending"]
    assert {r["id"]: r["status"] for r in rows}[first["id"]] == "cancelled"


async def test_orders_cap_in_the_bot_is_a_localized_message(tenantry, updates, bot_api):
    config = tenantry.add_tenant(
        "shop", locale="ru", features={"orders": {**SHOP, "max_active_orders_per_customer": 1}}
    )
    await tenantry.start()
    rye = await _rye(tenantry, config)
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "items": [{"item_id": rye}],
        "phone": "+79990001122",
        "customer_id": ANNA["id"],
    }
    created = await tenantry.client.post(
        "/api/tenants/shop/orders/orders", json=body, headers=tenantry.api_headers("shop")
    )
    assert created.status_code == 201, created.text
    user = ANNA["id"]
    steps = [
        updates.callback_query(f"om:a:{rye}", user_id=user),
        updates.callback_query("oc:go", user_id=user),
        updates.contact("+79990001122", user_id=user),
    ]
    for update in steps:
        assert (await tenantry.post_update("shop", update)).status_code == 200
    confirm = updates.callback_query("ck:ok", user_id=user)
    assert (await tenantry.post_update("shop", confirm)).status_code == 200
    [edited] = bot_api.calls("editMessageText", bot_id=bot_id(config))[-1:]
    assert "активных заказов" in edited.params["text"], edited.params["text"]
    rows = await tenantry.sql(f'SELECT count(*) AS n FROM "{schema(config)}".orders')
    assert rows == [{"n": 1}]


# ---------------------------------------------------------------- connection cap per tenant


class Sleeper:
    """A test plugin: ``POST /sleep`` holds one of the tenant's connections in ``pg_sleep``,
    and ``POST /once`` is an idempotent create whose first run hangs until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.first_started = asyncio.Event()
        self.runs = 0

    @hookimpl
    def register_route_handlers(self) -> list[Any]:
        plugin = self

        @post("/sleep", guards=[require_api_key_or_webapp], status_code=200)
        async def sleep(tenant: TenantDep, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
            # The tenant id in a comment tells the tenants' sleeps apart in pg_stat_activity.
            await tenant.db.fetchval(
                f"SELECT pg_sleep($1) /* sleeper:{tenant.id} */", data["seconds"]
            )
            return {"slept": data["seconds"]}

        @post("/once", guards=[require_api_key_or_webapp])
        async def once(tenant: TenantDep, request: Request[Any, Any, Any]) -> Response[Any]:
            async def run() -> tuple[int, Any]:
                plugin.runs += 1
                number = plugin.runs
                if number == 1:  # the "crashed" request: never finishes on its own
                    plugin.first_started.set()
                    await plugin.release.wait()
                return 201, {"run": number}

            return await idempotent_response(request, tenant, "sleeper.once", run, pending_ttl=1)

        return [sleep, once]


async def _sleeping(tenantry: Any, tenant_id: str) -> int:
    rows = await tenantry.sql(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
        f"%sleeper:{tenant_id} %",
    )
    return rows[0]["n"]


async def test_a_tenant_at_its_connection_cap_does_not_hold_up_another(tenantry):
    slow = tenantry.tenant_config("slow", features={"sleeper": {}})
    slow["storage"]["max_connections"] = 2
    tenantry.write_tenant("slow", yaml.safe_dump(slow, sort_keys=False))
    tenantry.add_tenant("fast", features={"sleeper": {}})
    await tenantry.start(plugins=[("sleeper", Sleeper())])
    client = tenantry.client

    def sleep(tenant_id: str, seconds: float) -> Any:
        return client.post(
            f"/api/tenants/{tenant_id}/sleeper/sleep",
            json={"seconds": seconds},
            headers=tenantry.api_headers(tenant_id),
        )

    slow_requests = [asyncio.create_task(sleep("slow", 1.0)) for _ in range(5)]
    peak = 0
    deadline = time.monotonic() + 10
    while await _sleeping(tenantry, "slow") < 2:
        assert time.monotonic() < deadline, "the slow tenant never started sleeping"
        await asyncio.sleep(0.02)
    fast = await asyncio.gather(*(sleep("fast", 0) for _ in range(4)))
    assert [r.status_code for r in fast] == [200] * 4, [r.text for r in fast]
    # The fast tenant was served while the slow one still had requests waiting.
    assert sum(not t.done() for t in slow_requests) >= 3
    while not all(t.done() for t in slow_requests):
        peak = max(peak, await _sleeping(tenantry, "slow"))
        await asyncio.sleep(0.02)
    assert peak <= 2
    assert [t.result().status_code for t in slow_requests] == [200] * 5

    # Waiting for the tenant's own cap has a timeout: 503 with Retry-After, not a hang.
    tenantry.runtime.registry.get("slow").db.acquire_timeout = 0.2
    answers = await asyncio.gather(*(sleep("slow", 1.0) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 200, 503]
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == "1"


async def test_storage_max_connections_is_validated(tenantry):
    from core.config.model import ConfigError, parse_tenant_text

    config = tenantry.tenant_config("filin")
    config["storage"]["max_connections"] = 0
    with pytest.raises(ConfigError) as error:
        parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    assert "storage.max_connections" in str(error.value)
    config["storage"]["max_connections"] = 3
    parsed, _ = parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    assert parsed.storage.max_connections == 3


async def test_bad_limit_strings_are_yaml_errors_naming_the_field(tenantry):
    from core.config.model import ConfigError, parse_tenant_text

    config = tenantry.tenant_config("filin", limits={"api_writes": "lots"})
    with pytest.raises(ConfigError) as error:
        parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    message = str(error.value)
    assert "limits" in message and "api_writes" in message and "lots" in message
    config = tenantry.tenant_config("filin", limits={"bot_writes": "5/second;100/hour"})
    parsed, _ = parse_tenant_text(yaml.safe_dump(config), "filin.yaml")
    assert parsed.limits.bot_writes == "5/second;100/hour"
    assert parsed.limits.api_writes == "60/minute"


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
