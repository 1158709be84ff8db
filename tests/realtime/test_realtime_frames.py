"""Frames as docs/plugins/realtime.md documents them: an order over the API, a booking over the bot.

Real WebSocket clients (the ``websockets`` library) connect to a runtime served
over HTTP; orders are created through the orders API, bookings through the
bot's webhook, and what arrives on the socket is checked field by field.
"""

from __future__ import annotations

import re
from datetime import datetime

from _realtime_support import (
    ADMIN,
    add_market,
    assert_increasing,
    create_order,
    follow,
    item_ids,
    open_socket,
    partner_key,
    set_order_status,
    stream_id,
    ticket,
    webapp_headers,
)

FRAME_KEYS = {"type", "id", "topic", "event", "event_id", "data", "occurred_at"}
STREAM_ID = re.compile(r"^\d+-\d+$")


def _check_event_frame(frame: dict, topic: str, event: str) -> None:
    assert set(frame) == FRAME_KEYS, frame
    assert (frame["type"], frame["topic"], frame["event"]) == ("event", topic, event)
    assert STREAM_ID.match(frame["id"]), frame["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", frame["event_id"]), frame["event_id"]
    occurred = datetime.fromisoformat(frame["occurred_at"])
    assert occurred.utcoffset() is not None and occurred.utcoffset().total_seconds() == 0


async def test_an_order_made_through_the_api_arrives_with_the_documented_fields(tenantry):
    config = add_market(tenantry)
    await tenantry.start(watch=False)
    items = await item_ids(tenantry, config)
    admin_key = tenantry.api_key("market")

    admin = await follow(
        tenantry.url, "market", {"X-API-Key": admin_key}, {"orders": None, "orders:bakery": None}
    )
    partner = await follow(
        tenantry.url,
        "market",
        {"X-API-Key": partner_key(tenantry, "market", "bakery")},
        {"orders:bakery": None},
    )
    try:
        subscribed = [f for f in admin.frames if f["type"] == "subscribed"]
        assert {f["topic"] for f in subscribed} == {"orders", "orders:bakery"}
        assert all(STREAM_ID.match(f["cursor"]) for f in subscribed), subscribed

        order = await create_order(tenantry.client, "market", admin_key, items)
        [on_all] = await admin.wait_events("orders", 1)
        [on_store] = await admin.wait_events("orders:bakery", 1)
        [partner_sees] = await partner.wait_events("orders:bakery", 1)
        _check_event_frame(on_all, "orders", "orders.created")
        _check_event_frame(on_store, "orders:bakery", "orders.created")
        # One event on two topics: one event_id, each topic its own position.
        assert on_all["event_id"] == on_store["event_id"] == partner_sees["event_id"]
        assert partner_sees["id"] == on_store["id"]
        data = on_store["data"]
        assert {
            k: data[k]
            for k in (
                "order_id",
                "store_id",
                "customer_name",
                "total",
                "currency",
                "type",
                "status",
            )
        } == {
            "order_id": order["id"],
            "store_id": "bakery",
            "customer_name": "Anna",
            "total": 24000,
            "currency": "RUB",
            "type": "pickup",
            "status": "pending",
        }
        assert [
            {k: line[k] for k in ("item_id", "name", "quantity", "unit_price")}
            for line in data["items"]
        ] == [
            {"item_id": items["baguette"], "name": "Baguette", "quantity": 2, "unit_price": 12000}
        ]

        await set_order_status(tenantry.client, "market", admin_key, order["id"], "preparing")
        await set_order_status(tenantry.client, "market", admin_key, order["id"], "cancelled")
        frames = await partner.wait_events("orders:bakery", 4)
        assert [f["event"] for f in frames] == [
            "orders.created",
            "orders.status_changed",
            "orders.status_changed",
            "orders.cancelled",
        ]
        assert [f["data"]["status"] for f in frames] == ["pending", "preparing", "cancelled", "cancelled"]  # fmt: skip
        assert frames[1]["data"]["previous_status"] == "pending"
        assert_increasing(frames)
        assert len({f["event_id"] for f in frames}) == 4
        assert stream_id(frames[0]["id"]) > stream_id(
            next(f["cursor"] for f in partner.frames if f["type"] == "subscribed")
        )

        # The client may ping too; the server answers pong.
        await partner.send({"type": "ping"})
        await partner.wait(lambda: any(f["type"] == "pong" for f in partner.frames), what="pong")
    finally:
        await admin.close()
        await partner.close()


def _buttons(call) -> list[dict]:
    markup = call.params.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def _press(call, text: str) -> str:
    for button in _buttons(call):
        if button["text"] == text:
            return button["callback_data"]
    raise AssertionError(f"no button {text!r} in {[b['text'] for b in _buttons(call)]}")


async def test_a_booking_made_through_the_bot_arrives_on_the_bookings_topic(
    tenantry, updates, bot_api
):
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    config = tenantry.add_tenant(
        "filin",
        timezone="Europe/Moscow",
        features={
            "booking": {
                "kind": "tables",
                "tables": [{"id": "t1", "seats": 4, "zone": "hall"}],
                "opening_hours": dict.fromkeys(
                    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "12:00-23:00"
                ),
                "slot_step_minutes": 30,
                "stay_minutes": 120,
                "min_notice_minutes": 60,
                "days_ahead": 30,
            },
            "realtime": {},
        },
    )
    await tenantry.start(watch=False)
    bot_id = int(config["bot"]["token"].split(":")[0])

    # An admin of the bot takes a ticket with WebApp init data, as a staff screen inside Telegram would.
    body = await ticket(tenantry.url, "filin", webapp_headers(config, ADMIN, "Olga"))
    assert "bookings" in body["topics"]
    board = await open_socket(tenantry.url, "filin", body["ticket"])
    try:
        [answer] = await board.subscribe({"bookings": None})
        assert answer["type"] == "subscribed"

        async def say(update, user_id):
            before = len(bot_api.calls("sendMessage", bot_id=bot_id, chat_id=user_id))
            response = await tenantry.post_update("filin", update)
            assert response.status_code == 200, response.text
            return bot_api.calls("sendMessage", bot_id=bot_id, chat_id=user_id)[before:][-1]

        async def tap(call, text, user_id):
            data = _press(call, text)
            query = updates.callback_query(
                data, user_id=user_id, bot_id=bot_id, message_text=call.params.get("text", "")
            )
            return await say(query, user_id)

        guest = 4242
        day = datetime.now(ZoneInfo("Europe/Moscow")).date() + timedelta(days=2)
        calendar = await say(updates.command("book", user_id=guest), guest)
        if str(day.day) not in [b["text"] for b in _buttons(calendar)]:
            calendar = await tap(calendar, "›", guest)
        times = await tap(calendar, str(day.day), guest)
        party = await tap(times, "19:00", guest)
        await tap(party, "2", guest)
        await say(updates.message("Anna", user_id=guest), guest)
        summary = await say(updates.contact("79990001122", user_id=guest), guest)
        done = await tap(summary, "Confirm", guest)
        assert done.params["text"].startswith("Booked! #")
        [row] = await tenantry.sql(f'SELECT id FROM "{config["storage"]["schema"]}".bookings')

        [created] = await board.wait_events("bookings", 1)
        _check_event_frame(created, "bookings", "booking.created")
        data = created["data"]
        assert (data["id"], data["user_id"], data["customer_name"], data["party_size"]) == (
            row["id"],
            guest,
            "Anna",
            2,
        )
        assert data["status"] == "confirmed" and data["phone"] == "+79990001122"
        assert datetime.fromisoformat(data["starts_at"]).astimezone(ZoneInfo("Europe/Moscow")).hour == 19  # fmt: skip

        # The admin marks the guest seated from the bot's notification.
        [notice] = bot_api.calls("sendMessage", bot_id=bot_id, chat_id=ADMIN)
        await tap(notice, "seated", ADMIN)
        frames = await board.wait_events("bookings", 2)
        changed = frames[1]
        _check_event_frame(changed, "bookings", "booking.status_changed")
        assert (changed["data"]["from_status"], changed["data"]["to_status"]) == ("confirmed", "seated")  # fmt: skip
        assert changed["data"]["id"] == row["id"]
        assert_increasing(frames)
    finally:
        await board.close()
