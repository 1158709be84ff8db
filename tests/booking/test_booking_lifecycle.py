"""After booking: reminders (once), cancellation from /mybookings, feedback, renames, restarts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import asyncpg
import pytest
import yaml
from _booking_support import (
    ADMIN,
    BotUser,
    add_restaurant,
    at,
    booking_body,
    buttons,
    future_day,
    schema,
)

from core.testing.updates import webapp_init_data
from plugins.booking.service import send_reminder


async def _book_as(tenantry, config, user_id, start, **fields):
    headers = {
        "X-Telegram-Init-Data": webapp_init_data(
            config["bot"]["token"], {"id": user_id, "first_name": "G"}
        )
    }
    response = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings", json=booking_body(start, **fields), headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _set_status(tenantry, booking_id, status):
    response = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{booking_id}/status",
        json={"status": status},
        headers=tenantry.api_headers("filin"),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_reminder_is_queued_on_create_and_sent_once(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, reminder_minutes=60)
    await tenantry.start()
    guest = BotUser(tenantry, updates, bot_api, "filin", config, user_id=8101)
    booking = await _book_as(tenantry, config, 8101, at(future_day(), "19:00"))
    tenant = tenantry.runtime.registry.get("filin")
    # creation queued the job for 60 minutes before the start, under the dedupe key
    job = await tenant.jobs.queue.job(f"filin:remind:{booking['id']}")
    assert job is not None and job.scheduled == int(at(future_day(), "18:00").timestamp())
    assert (
        await tenant.enqueue(
            "booking.remind", key=f"remind:{booking['id']}", booking_id=booking["id"]
        )
        is False
    )

    # run it now through the real queue, twice under a fresh key: one message
    for _ in range(2):
        await tenant.enqueue("booking.remind", key=f"now:{booking['id']}", booking_id=booking["id"])
    await bot_api.wait_for("sendMessage", chat_id=8101, timeout=10)
    await asyncio.sleep(0.5)
    reminders = [c for c in guest.sent() if c.params["text"].startswith("Reminder:")]
    assert len(reminders) == 1 and f"#{booking['id']}" in reminders[0].params["text"]
    assert (
        await send_reminder(tenant, booking["id"]) is False
    )  # a second runtime's run sends nothing

    # a cancelled booking gets no reminder
    other = await _book_as(tenantry, config, 8101, at(future_day(), "13:00"))
    await _set_status(tenantry, other["id"], "cancelled")
    await tenant.enqueue("booking.remind", key=f"now:{other['id']}", booking_id=other["id"])
    await asyncio.sleep(1.5)
    assert len([c for c in guest.sent() if c.params["text"].startswith("Reminder:")]) == 1
    rows = await tenantry.sql(
        f'SELECT id, reminded_at IS NOT NULL AS reminded FROM "{schema(config)}".bookings ORDER BY id'
    )
    assert rows == [{"id": booking["id"], "reminded": True}, {"id": other["id"], "reminded": False}]


async def test_mybookings_cancel_respects_the_cutoff(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, cancellation_cutoff_minutes=3 * 24 * 60)
    await tenantry.start()
    guest = BotUser(tenantry, updates, bot_api, "filin", config, user_id=8202)
    near = await _book_as(tenantry, config, 8202, at(future_day(2), "19:00"))
    far = await _book_as(tenantry, config, 8202, at(future_day(5), "19:00"))

    await guest.command("mybookings")
    near_item, far_item = guest.sent()[-2:]
    assert f"#{near['id']}" in near_item.params["text"] and buttons(near_item) == []
    assert [b["text"] for b in buttons(far_item)] == [f"Cancel #{far['id']}"]
    done = await guest.tap(far_item, f"Cancel #{far['id']}")
    assert done.params["text"].startswith(f"Booking #{far['id']} for")
    admin_notice = bot_api.calls("sendMessage", bot_id=guest.bot_id, chat_id=ADMIN)[-1]
    assert (
        admin_notice.params["text"].startswith(f"Booking #{far['id']}")
        and "cancelled" in admin_notice.params["text"]
    )

    # past the cutoff the customer is refused even with a crafted button; an admin may still cancel
    crafted = SimpleNamespace(
        params={
            "text": "",
            "reply_markup": {
                "inline_keyboard": [[{"text": "x", "callback_data": f"bkx:{near['id']}"}]]
            },
        }
    )
    refused = await guest.tap(crafted, "x")
    assert refused.params["text"] == f"It is too late to cancel #{near['id']} here; please call us."
    response = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{near['id']}/status",
        json={"status": "cancelled"},
        headers={
            "X-Telegram-Init-Data": webapp_init_data(
                config["bot"]["token"], {"id": 8202, "first_name": "G"}
            )
        },
    )
    assert response.status_code == 409 and response.json()["code"] == "booking.cancellation_cutoff"
    assert (await _set_status(tenantry, near["id"], "cancelled"))["status"] == "cancelled"
    history = await tenantry.sql(
        f'SELECT booking_id, to_status, actor_role FROM "{schema(config)}".booking_history WHERE to_status = $1 ORDER BY id',
        "cancelled",
    )
    assert history == [
        {"booking_id": far["id"], "to_status": "cancelled", "actor_role": "customer"},
        {"booking_id": near["id"], "to_status": "cancelled", "actor_role": "admin"},
    ]


async def test_completion_asks_for_a_rating_stored_once(tenantry, updates, bot_api):
    config = add_restaurant(tenantry)
    await tenantry.start()
    guest = BotUser(tenantry, updates, bot_api, "filin", config, user_id=8303)
    booking = await _book_as(tenantry, config, 8303, at(future_day(), "19:00"))
    await _set_status(tenantry, booking["id"], "seated")
    assert guest.sent()[-1].params["text"].endswith("is now: seated.")
    await _set_status(tenantry, booking["id"], "completed")
    request = guest.sent()[-1]
    assert request.params["text"].startswith("Thank you for visiting!")
    assert len(buttons(request)) == 5
    thanks = await guest.tap(request, "★★★★")
    assert thanks.params["text"] == "Thank you for your rating!"
    await guest.tap(request, "★")
    assert await tenantry.sql(
        f'SELECT booking_id, user_id, rating FROM "{schema(config)}".feedback'
    ) == [{"booking_id": booking["id"], "user_id": 8303, "rating": 4}]


async def test_renaming_a_status_migrates_rows_and_history(tenantry):
    config = add_restaurant(tenantry)
    await tenantry.start()
    booking = await _book_as(tenantry, config, 8404, at(future_day(), "19:00"))
    machine = {
        "initial": "pending",
        "transitions": {
            "pending": [{"to": "accepted", "roles": ["admin", "system"]}, {"to": "cancelled"}],
            "accepted": [
                {"to": "seated", "roles": ["admin"]},
                {"to": "cancelled"},
                {"to": "no_show", "roles": ["admin"]},
            ],
            "seated": ["completed"],
        },
        "renamed": {"confirmed": "accepted"},
    }
    config["statuses"] = {"booking": machine}
    config["features"]["booking"]["confirmed_status"] = "accepted"
    tenantry.write_tenant("filin", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    for _ in range(100):
        tenant = tenantry.runtime.registry.get("filin")
        if "accepted" in tenant.statuses["booking"].states and tenant.state == "running":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the reload did not happen: {tenant.state} {tenant.detail}")
    rows = await tenantry.sql(f'SELECT status FROM "{schema(config)}".bookings')
    assert rows == [{"status": "accepted"}]
    history = await tenantry.sql(
        f'SELECT from_status, to_status FROM "{schema(config)}".booking_history ORDER BY id'
    )
    assert history == [
        {"from_status": None, "to_status": "pending"},
        {"from_status": "pending", "to_status": "accepted"},
    ]
    seated = await _set_status(tenantry, booking["id"], "seated")
    assert seated["status"] == "seated"
    # the CHECK constraint follows the YAML: the old name is refused by PostgreSQL itself
    with pytest.raises(asyncpg.CheckViolationError):
        await tenantry.sql(f"UPDATE \"{schema(config)}\".bookings SET status = 'confirmed'")


async def test_a_restart_mid_flow_resumes_from_redis(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, locale="en")
    await tenantry.start()
    guest = BotUser(tenantry, updates, bot_api, "filin", config, user_id=8505)
    day = future_day(2)
    calendar = await guest.command("book")
    if str(day.day) not in [b["text"] for b in buttons(calendar)]:
        calendar = await guest.tap(calendar, "›")
    times = await guest.tap(calendar, str(day.day))
    party = await guest.tap(times, "20:00")
    await guest.tap(party, "2")
    await tenantry.stop()
    await tenantry.start()
    ask_phone = await guest.say("Pavel")
    assert ask_phone.params["text"].startswith("Your phone number?")
    summary = await guest.say("+7 900 123-45-67")
    done = await guest.tap(summary, "Confirm")
    assert done.params["text"].startswith("Booked!")
    rows = await tenantry.sql(
        f'SELECT customer_name, party_size, starts_at FROM "{schema(config)}".bookings'
    )
    assert rows == [{"customer_name": "Pavel", "party_size": 2, "starts_at": at(day, "20:00")}]
