"""Subscribing on /start, /stop, /subscribe and the unsubscribe button, over the webhook."""

from __future__ import annotations

from _broadcast_support import Shop, sends


async def test_start_subscribes_and_the_core_still_welcomes(shop: Shop, updates, bot_api):
    response = await shop.h.post_update(
        shop.id, updates.command("start", user_id=501, first_name="Ann", language_code="ru")
    )
    assert response.status_code == 200
    [row] = await shop.sql("SELECT * FROM {s}.broadcast_subscribers")
    assert (row["user_id"], row["status"], row["language_code"], row["source"]) == (
        501,
        "active",
        "ru",
        "start",
    )
    # The core's /start handler answered too (the plugin let the update through).
    [welcome] = sends(bot_api, shop.bot_id)
    assert welcome.params["text"].startswith("Hello! I am the bot of Shop")


async def test_stop_unsubscribes_with_reason_and_start_does_not_undo_it(
    shop: Shop, updates, bot_api
):
    await shop.h.post_update(shop.id, updates.command("start", user_id=502))
    await shop.h.post_update(shop.id, updates.command("stop", user_id=502))
    [row] = await shop.sql("SELECT status, left_reason, left_at FROM {s}.broadcast_subscribers")
    assert (row["status"], row["left_reason"]) == ("unsubscribed", "stop")
    assert row["left_at"] is not None
    assert sends(bot_api, shop.bot_id)[-1].params["text"].startswith("You will no longer receive")

    await shop.h.post_update(shop.id, updates.command("start", user_id=502))
    [row] = await shop.sql("SELECT status FROM {s}.broadcast_subscribers")
    assert row["status"] == "unsubscribed"

    await shop.h.post_update(shop.id, updates.command("subscribe", user_id=502))
    [row] = await shop.sql("SELECT status, left_reason, left_at FROM {s}.broadcast_subscribers")
    assert (row["status"], row["left_reason"], row["left_at"]) == ("active", None, None)


async def test_start_brings_back_someone_telegram_unsubscribed(shop: Shop, updates):
    await shop.add_subscribers([503])
    await shop.sql(
        "UPDATE {s}.broadcast_subscribers SET status = 'blocked', left_reason = 'blocked',"
        " left_at = now()"
    )
    await shop.h.post_update(shop.id, updates.command("start", user_id=503))
    [row] = await shop.sql("SELECT status FROM {s}.broadcast_subscribers")
    assert row["status"] == "active"


async def test_unsubscribe_button(shop: Shop, updates, bot_api):
    await shop.add_subscribers([504])
    response = await shop.h.post_update(shop.id, updates.callback_query("bc:unsub", user_id=504))
    assert response.status_code == 200
    [row] = await shop.sql("SELECT status, left_reason FROM {s}.broadcast_subscribers")
    assert (row["status"], row["left_reason"]) == ("unsubscribed", "button")
    [answer] = bot_api.calls("answerCallbackQuery")
    assert answer.params["text"] == "You are unsubscribed."


async def test_start_does_not_subscribe_when_disabled(tenantry, updates):
    config = tenantry.add_tenant("quiet", features={"broadcast": {"subscribe_on_start": False}})
    await tenantry.start()
    await tenantry.post_update("quiet", updates.command("start", user_id=505))
    schema = config["storage"]["schema"]
    assert await tenantry.sql(f'SELECT * FROM "{schema}".broadcast_subscribers') == []
