"""The plugin kit (money, phones, dates, texts, safe Bot API sends) and the runtime's one error shape."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import get

from core import hookimpl
from core.errors import BadRequest, Conflict, NotFound, ServiceUnavailable, TooManyRequests
from core.kit import (
    InvalidPhoneNumber,
    edit_message_text,
    error_text,
    format_date,
    format_datetime,
    format_money,
    format_time,
    minor_unit_digits,
    normalize_phone,
    phone_region,
    send_message,
    status_label,
    weekday_name,
    weekday_names,
)

NBSP = "\u00a0"
MOSCOW = ZoneInfo("Europe/Moscow")


def bot_id(config: dict[str, Any]) -> int:
    return int(config["bot"]["token"].split(":")[0])


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[tuple[str, dict[str, Any]]]:
    """``(level, event dict)`` of the structlog lines named ``name``."""
    return [
        (r.levelname, r.msg)
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == name
    ]


# ---------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (15050, "RUB", "ru", f"150,50{NBSP}₽"),
        (15050, "RUB", "en", f"RUB{NBSP}150.50"),  # CLDR currency spacing: a code is spaced
        (-15050, "RUB", "ru", f"-150,50{NBSP}₽"),
        (-15050, "RUB", "en", f"-RUB{NBSP}150.50"),
        (123456789012, "RUB", "ru", f"1{NBSP}234{NBSP}567{NBSP}890,12{NBSP}₽"),
        (123456789012, "RUB", "en", f"RUB{NBSP}1,234,567,890.12"),
        (1500, "JPY", "en", "¥1,500"),  # JPY has no minor unit: 1500 is 1,500 yen
        (1500, "JPY", "ru", f"1{NBSP}500{NBSP}¥"),
        (-1500, "JPY", "en", "-¥1,500"),
        (15050, "USD", "en", "$150.50"),
        (-15050, "USD", "en", "-$150.50"),
        (15050, "USD", "ru", f"150,50{NBSP}$"),
        (5, "USD", "en", "$0.05"),
        (0, "RUB", "ru", f"0,00{NBSP}₽"),
    ],
)
def test_money_in_minor_units_per_currency_and_locale(amount, currency, locale, expected):
    assert format_money(amount, currency, locale) == expected


def test_minor_unit_digits_come_from_the_currency_data():
    assert [minor_unit_digits(c) for c in ("RUB", "USD", "JPY", "KWD")] == [2, 2, 0, 3]
    with pytest.raises(ValueError, match="unknown currency 'XYZ'"):
        format_money(100, "XYZ", "ru")
    with pytest.raises(TypeError, match="minor units"):
        format_money(1.5, "RUB", "ru")  # type: ignore[arg-type]


# ---------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("+7 (999) 000-11-22", "RU", "+79990001122"),
        ("8 999 000 11 22", "RU", "+79990001122"),  # the national trunk prefix
        ("9990001122", "RU", "+79990001122"),
        ("79990001122", "US", "+79990001122"),  # a shared Telegram contact: no "+"
        ("+79990001122", None, "+79990001122"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("+44 20 7946 0958", "RU", "+442079460958"),
        ("  +49 30 901820  ", None, "+4930901820"),
    ],
)
def test_phones_are_normalised_to_e164(text, region, expected):
    assert normalize_phone(text, region) == expected


@pytest.mark.parametrize(
    ("text", "region", "reason"),
    [
        ("", "RU", "empty"),
        ("call me", "RU", "not a number"),
        ("12345", "RU", "not a valid number"),
        ("+7 999", None, "not a valid number"),
        ("9990001122", None, "no known country code"),
        ("1" * 80, "RU", "too long"),
    ],
)
def test_invalid_phones_are_refused_with_a_reason(text, region, reason):
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone(text, region)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_phone_region_of_a_tenant():
    assert phone_region("Europe/Moscow", "en") == "RU"  # the zone's country first
    assert phone_region("Asia/Tokyo", "ru") == "JP"
    assert phone_region("UTC", "ru") == "RU"  # no country: the locale's likely one
    assert phone_region("UTC", "en") == "US"


# ---------------------------------------------------------------- dates


def test_weekday_names_monday_first():
    assert weekday_names("en") == ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
    assert weekday_names("ru") == ["пн", "вт", "ср", "чт", "пт", "сб", "вс"]
    assert weekday_names("en", "wide")[0] == "Monday"
    assert weekday_names("ru", "wide", context="stand-alone")[6] == "воскресенье"
    assert weekday_name(date(2026, 11, 24), "ru") == "вторник"
    assert weekday_name(date(2026, 11, 24), "en", "abbreviated") == "Tue"


def test_dates_and_times_in_the_tenant_zone_and_locale():
    moment = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 00:30 on the 25th in Moscow
    assert format_datetime(moment, "ru", tz=MOSCOW, format="dd.MM.yyyy HH:mm") == "25.11.2026 00:30"
    # CLDR writes a narrow no-break space before "г."
    assert format_date(moment, "ru", tz=MOSCOW) == "25 нояб. 2026\u202fг."
    assert format_date(moment, "en", tz=UTC, format="long") == "November 24, 2026"
    assert format_time(moment, "ru", tz=MOSCOW) == "00:30"
    assert format_time(moment, "en", tz=MOSCOW).replace("\u202f", " ") == "12:30 AM"
    assert format_time(time(19, 0), "ru") == "19:00"
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2026, 11, 24, 21, 30), "ru", tz=MOSCOW)


# ---------------------------------------------------------------- texts


def test_every_plugin_text_exists_in_english_and_russian():
    from plugins.booking.texts import TEXTS as BOOKING
    from plugins.orders.texts import TEXTS as ORDERS

    for texts in (BOOKING, ORDERS):
        assert set(texts["en"]) == set(texts["ru"])


async def test_status_labels_and_refusal_texts_come_from_the_tenant_texts(tenantry):
    tenantry.add_tenant(
        "glow",
        locale="ru",
        features={"orders": {}},
        texts={"orders.status.ready": "можно забирать"},
    )
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("glow")
    assert status_label(tenant, "orders", "preparing") == "готовится"
    assert status_label(tenant, "orders", "ready") == "можно забирать"  # the tenant's override
    assert status_label(tenant, "orders", "on_hold") == "on_hold"  # no text: the state's name
    below = BadRequest(
        "orders.below_minimum", "under the minimum", minimum=30000, subtotal=9000, currency="RUB"
    )
    assert error_text(tenant, below, minimum="300 ₽", subtotal="90 ₽") == (
        "минимальный заказ — 300 ₽, а товаров на 90 ₽"
    )
    unknown = BadRequest("orders.something_new", "a refusal without a text")
    assert error_text(tenant, unknown) == "Извините, что-то пошло не так. Попробуйте ещё раз."


# ---------------------------------------------------------------- safe Bot API sends


async def test_a_blocked_user_is_marked_and_other_chats_still_get_theirs(
    tenantry, updates, bot_api, caplog
):
    config = tenantry.add_tenant("filin")
    await tenantry.start()
    for user_id in (701, 702):
        await tenantry.post_update("filin", updates.command("start", user_id=user_id))
    tenant = tenantry.runtime.registry.get("filin")
    bot_api.fail_next("sendMessage", error_code=403, chat_id=701)

    assert await send_message(tenant, 701, "news") is None
    sent = await send_message(tenant, 702, "news")
    assert sent is not None and sent.chat.id == 702

    schema = config["storage"]["schema"]
    rows = await tenantry.sql(f'SELECT telegram_id, blocked FROM "{schema}".users ORDER BY 1')
    assert rows == [{"telegram_id": 701, "blocked": True}, {"telegram_id": 702, "blocked": False}]
    [refused] = [c for c in bot_api.calls("sendMessage", chat_id=701) if c.params["text"] == "news"]
    assert refused.error_code == 403
    [(level, line)] = events(caplog, "bot_blocked_by_user")
    assert level == "INFO" and line["chat_id"] == 701 and "exc_info" not in line
    # /start again: the user is back.
    await tenantry.post_update("filin", updates.command("start", user_id=701))
    assert (await tenantry.sql(f'SELECT blocked FROM "{schema}".users WHERE telegram_id = 701'))[0][
        "blocked"
    ] is False


async def test_429_is_waited_out_then_the_message_goes(tenantry, bot_api, caplog):
    config = tenantry.add_tenant("filin")
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("filin")
    bot_api.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=703)

    sent = await send_message(tenant, 703, "hello")

    assert sent is not None and sent.text == "hello"
    first, second = bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=703)
    assert (first.error_code, second.error_code) == (429, None)
    assert second.at - first.at >= 0.9  # Bot API: wait retry_after (1 s) before retrying
    [(level, line)] = events(caplog, "bot_send_throttled")
    assert level == "INFO" and line["retry_after"] == 1


async def test_flood_waits_are_bounded(tenantry, bot_api, caplog):
    config = tenantry.add_tenant("filin")
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("filin")
    # Still limited after the retries it may take: given up, once the attempts are spent.
    bot_api.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=704, times=5)
    assert await send_message(tenant, 704, "hello", attempts=2) is None
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=704)) == 2
    # A wait longer than max_wait is not waited for at all.
    bot_api.fail_next("sendMessage", error_code=429, retry_after=120, chat_id=705)
    assert await send_message(tenant, 705, "hello") is None
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=705)) == 1
    dropped = events(caplog, "bot_send_dropped")
    assert [(level, line["reason"], line["chat_id"]) for level, line in dropped] == [
        ("WARNING", "flood", 704),
        ("WARNING", "flood", 705),
    ]
    assert not any("exc_info" in line for _, line in dropped)


async def test_network_errors_are_retried_then_dropped_without_raising(tenantry, bot_api, caplog):
    config = tenantry.add_tenant("filin")
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("filin")
    bot_api.set_unavailable(True, how="bad_gateway")
    try:
        assert await send_message(tenant, 706, "hello", attempts=2) is None
    finally:
        bot_api.set_unavailable(False)
    [(level, line)] = events(caplog, "bot_send_dropped")
    assert (level, line["reason"]) == ("WARNING", "unreachable") and "exc_info" not in line
    assert len(events(caplog, "bot_send_retried")) == 1
    sent = await send_message(tenant, 706, "hello")
    assert sent is not None
    assert bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=706)[-1].error_code is None
    # A refused call (400) is dropped at once; an edit to the same text is not an error.
    assert await send_message(tenant, 706, "x" * 5000) is None
    edited = await edit_message_text(tenant, 706, sent.message_id, "hello again")
    assert edited is not None and edited.text == "hello again"


# ---------------------------------------------------------------- errors and bodies


def test_error_classes_carry_status_code_and_extensions():
    taken = Conflict("booking.slot_taken", "this time was just taken", alternatives=["x"])
    assert (taken.status_code, taken.code, taken.detail) == (
        409,
        "booking.slot_taken",
        "this time was just taken",
    )
    assert taken.problem() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "this time was just taken",
        "code": "booking.slot_taken",
        "alternatives": ["x"],
    }
    limited = TooManyRequests("ratelimit.exceeded", "slow down", retry_after=2.2)
    assert limited.headers == {"Retry-After": "3"} and limited.extensions == {"retry_after": 3}
    assert ServiceUnavailable("storage.unavailable", "down").headers == {"Retry-After": "1"}
    assert NotFound("orders.not_found", "no order 7").status_code == 404
    with pytest.raises(TypeError, match="status"):
        BadRequest("x.y", "z", status="bad")


class _Crashing:
    """A plugin with one route that crashes, one that refuses, for the error tests."""

    @staticmethod
    @hookimpl
    def register_route_handlers() -> list[Any]:
        @get("/crash", sync_to_thread=False)
        def crash() -> None:
            raise RuntimeError("secret connection string postgresql://u:p@db")

        @get("/busy", sync_to_thread=False)
        def busy() -> None:
            raise TooManyRequests("crashing.busy", "come back later", retry_after=5)

        return [crash, busy]


async def test_every_error_answer_is_one_problem_body(tenantry, sample, caplog):
    tenantry.add_tenant("filin", features={"sample": {}, "crashing": {}})
    await tenantry.start(plugins=[("sample", sample), ("crashing", _Crashing())])
    client, headers = tenantry.client, tenantry.api_headers("filin")
    tickets = "/api/tenants/filin/sample/tickets"

    def problem(response: Any, status: int, code: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert list(body)[:5] == ["type", "title", "status", "detail", "code"], body
        assert (body["type"], body["status"], body["code"]) == ("about:blank", status, code)
        assert body["detail"]
        return body

    # Litestar's own errors: no route, wrong method, invalid body.
    problem(await client.get("/nowhere"), 404, "http.not_found")
    problem(await client.delete("/health"), 405, "http.method_not_allowed")
    invalid = problem(
        await client.post(f"{tickets}/", json={"title": "", "extra": 1}, headers=headers),
        400,
        "request.invalid",
    )
    assert invalid["errors"][0]["source"] == "body"
    problem(
        await client.post(
            f"{tickets}/", content=b"{nope", headers={**headers, "content-type": "application/json"}
        ),
        400,
        "request.malformed_json",
    )
    # The core's guards, a plugin's refusal, the status machine.
    assert problem(await client.get(f"{tickets}/"), 401, "http.unauthorized")["title"] == (
        "Unauthorized"
    )
    problem(
        await client.post(f"{tickets}/99/status", json={"status": "done"}, headers=headers),
        404,
        "sample.not_found",
    )
    created = (await client.post(f"{tickets}/", json={"title": "a"}, headers=headers)).json()
    moved = f"{tickets}/{created['id']}/status"
    assert (await client.post(moved, json={"status": "done"}, headers=headers)).status_code == 201
    refused = problem(
        await client.post(moved, json={"status": "open"}, headers=headers),
        409,
        "status.not_allowed",
    )
    assert (refused["current"], refused["target"], refused["allowed"]) == (
        "done",
        "open",
        ["closed"],
    )
    problem(
        await client.post(moved, json={"status": "lost"}, headers=headers), 400, "status.unknown"
    )
    busy = problem(await client.get("/api/tenants/filin/crashing/busy"), 429, "crashing.busy")
    assert (
        busy["retry_after"] == 5
        and (await client.get("/api/tenants/filin/crashing/busy")).headers["retry-after"] == "5"
    )
    # A crash: a bare 500 problem that gives nothing away, logged with its traceback.
    crash = problem(
        await client.get("/api/tenants/filin/crashing/crash"), 500, "http.internal_server_error"
    )
    assert "postgresql" not in crash["detail"]
    # The webhook answers in the same shape.
    webhook = await tenantry.post_update("nobody", {"update_id": 1}, secret="x")
    assert webhook.json() | {"detail": ""} == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "",
        "code": "webhook.unknown_tenant",
    }

    refusals = events(caplog, "request_refused")
    by_code = {line["code"]: level for level, line in refusals}
    assert by_code["http.unauthorized"] == "WARNING"
    assert by_code["status.not_allowed"] == by_code["sample.not_found"] == "INFO"
    assert by_code["http.not_found"] == by_code["request.invalid"] == "INFO"
    assert not any("exc_info" in line for _, line in refusals)
    assert len([1 for _, line in refusals if line["code"] == "sample.not_found"]) == 1  # once
    [(level, failed)] = events(caplog, "request_failed")
    assert level == "ERROR" and failed["exc_info"] and failed["tenant"] == "filin"


async def test_openapi_documents_every_body_and_the_problem_shape(tenantry):
    tenantry.add_tenant(
        "filin",
        features={
            "booking": {"kind": "tables", "tables": [{"id": "t1", "seats": 2}]},
            "orders": {},
        },
    )
    await tenantry.start()
    document = (await tenantry.client.get("/schema/openapi.json")).json()
    writes = {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("post", "patch", "put") and path.startswith("/api/tenants/")
    }
    expected = {
        ("/api/tenants/{tenant_id}/booking/bookings", "post"): "NewBooking",
        ("/api/tenants/{tenant_id}/booking/bookings/{booking_id}/status", "post"): "StatusChange",
        ("/api/tenants/{tenant_id}/booking/blocked-slots", "post"): "NewBlock",
        ("/api/tenants/{tenant_id}/orders/orders", "post"): "OrderIn",
        ("/api/tenants/{tenant_id}/orders/orders/{order_id}/status", "post"): "StatusChangeIn",
        ("/api/tenants/{tenant_id}/orders/categories", "post"): "CategoryIn",
        ("/api/tenants/{tenant_id}/orders/categories/{category_id}", "patch"): "CategoryPatch",
        ("/api/tenants/{tenant_id}/orders/items", "post"): "ItemIn",
        ("/api/tenants/{tenant_id}/orders/items/{item_id}", "patch"): "ItemPatch",
    }
    own = ("/api/tenants/{tenant_id}/booking/", "/api/tenants/{tenant_id}/orders/")
    assert {key for key in writes if key[0].startswith(own)} == set(expected)
    for key, operation in writes.items():
        # Every other plugin's write route with a body documents it as a Struct too.
        if "requestBody" in operation:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert "$ref" in schema or schema.get("type") != "object", (key, schema)
    for key, struct in expected.items():
        body = writes[key]["requestBody"]["content"]["application/json"]["schema"]
        # Litestar prefixes a name two plugins share with its module (orders_api_StatusChangeIn).
        assert body["$ref"].rsplit("/", 1)[1].split("_")[-1] == struct, (key, body)
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
    ]
    created = writes[("/api/tenants/{tenant_id}/booking/bookings", "post")]
    assert created["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/BookingView"
    )
    assert created["responses"]["400"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


async def test_notices_to_one_chat_are_spaced_a_second_apart_and_other_chats_are_not(
    tenantry, bot_api
):
    config = tenantry.add_tenant("filin")
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("filin")
    # Bot API FAQ: no more than one message per second to one chat.
    await asyncio.gather(*(send_message(tenant, 706, f"n{n}") for n in range(3)))
    await asyncio.gather(*(send_message(tenant, 800 + n, "other") for n in range(5)))
    same = sorted(c.at for c in bot_api.calls("sendMessage", bot_id=bot_id(config), chat_id=706))
    assert len(same) == 3
    assert min(b - a for a, b in itertools.pairwise(same)) >= 0.9
    others = sorted(
        c.at
        for c in bot_api.calls("sendMessage", bot_id=bot_id(config))
        if c.params["chat_id"] >= 800
    )
    assert len(others) == 5 and others[-1] - others[0] < 0.9
