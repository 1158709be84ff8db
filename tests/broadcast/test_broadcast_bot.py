"""The admin's /broadcast flow through the webhook, with the Bot API stand-in recording copies."""

from __future__ import annotations

import asyncio

from _broadcast_support import ADMIN, Shop, buttons, copies, photo_update, wait_text


async def _choose_all(shop: Shop, updates, bot_api) -> None:
    await shop.h.post_update(shop.id, updates.command("broadcast", user_id=ADMIN))
    menu = await wait_text(bot_api, ADMIN, "Broadcast to subscribers")
    assert buttons(menu)[0] == ("All subscribers (6)", "bc:a:0")
    assert ("Language: ru (1)", "bc:a:2") in buttons(menu)
    await shop.h.post_update(
        shop.id, updates.callback_query("bc:a:0", user_id=ADMIN, message_id=101)
    )
    await wait_text(bot_api, ADMIN, "All subscribers: 6 recipients", method="editMessageText")


async def test_text_campaign_is_copied_to_everyone_with_report_and_403_opt_out(
    shop: Shop, updates, bot_api
):
    await shop.add_subscribers(range(601, 606))
    await shop.add_subscribers([606], language="ru")
    await shop.sql("INSERT INTO {s}.users (telegram_id) VALUES (603)")
    bot_api.fail_next("copyMessage", error_code=403, chat_id=603)
    bot_api.fail_next(
        "copyMessage", error_code=400, description="Bad Request: chat not found", chat_id=604
    )
    await _choose_all(shop, updates, bot_api)

    text = updates.message(
        "Jazz night on Friday",
        user_id=ADMIN,
        entities=[{"type": "bold", "offset": 0, "length": 10}],
    )
    await shop.h.post_update(shop.id, text)
    source_id = text["message"]["message_id"]
    [preview] = bot_api.calls("copyMessage", chat_id=ADMIN)
    assert (preview.params["from_chat_id"], preview.params["message_id"]) == (ADMIN, source_id)
    confirm = await wait_text(bot_api, ADMIN, "This is how it will look. All subscribers: 6")
    assert [data for _, data in buttons(confirm)] == ["bc:go", "bc:no"]

    await shop.h.post_update(
        shop.id, updates.callback_query("bc:go", user_id=ADMIN, message_id=102)
    )
    report = await wait_text(bot_api, ADMIN, "Sent:")
    assert report.params["text"] == "Sent: 4, failed: 0, blocked: 2, unknown: 0"

    sent = [c for c in copies(bot_api, shop.bot_id) if c.params["chat_id"] != ADMIN]
    assert sorted(c.params["chat_id"] for c in sent) == [601, 602, 605, 606]
    for call in sent:
        assert (call.params["from_chat_id"], call.params["message_id"]) == (ADMIN, source_id)
        assert buttons(call) == [("Unsubscribe", "bc:unsub")]
    left = await shop.sql(
        "SELECT user_id, status, left_reason FROM {s}.broadcast_subscribers"
        " WHERE status <> 'active' ORDER BY user_id"
    )
    assert left == [
        {"user_id": 603, "status": "blocked", "left_reason": "blocked"},
        {"user_id": 604, "status": "blocked", "left_reason": "chat_not_found"},
    ]
    assert await shop.sql("SELECT blocked FROM {s}.users WHERE telegram_id = 603") == [
        {"blocked": True}
    ]
    # The status message was edited to the final counts.
    status = await wait_text(bot_api, ADMIN, "Sent: 4 of 6", method="editMessageText")
    assert "left: 0" in status.params["text"]


async def test_photo_and_album(shop: Shop, updates, bot_api):
    await shop.add_subscribers(range(601, 606))
    await shop.add_subscribers([606], language="ru")
    await _choose_all(shop, updates, bot_api)
    photo = photo_update(updates, ADMIN)
    await shop.h.post_update(shop.id, photo)
    await wait_text(bot_api, ADMIN, "This is how it will look")
    await shop.h.post_update(
        shop.id, updates.callback_query("bc:go", user_id=ADMIN, message_id=103)
    )
    await wait_text(bot_api, ADMIN, "Sent: 6,")
    assert {c.params["message_id"] for c in copies(bot_api, shop.bot_id)} == {
        photo["message"]["message_id"]
    }

    bot_api.clear()
    await _choose_all(shop, updates, bot_api)
    parts = [photo_update(updates, ADMIN, media_group_id="album-1") for _ in range(3)]
    # Telegram posts the parts of an album at once.
    await asyncio.gather(*(shop.h.post_update(shop.id, part) for part in parts))
    [confirm] = [
        c
        for c in bot_api.calls("sendMessage", chat_id=ADMIN)
        if c.params["text"].startswith("Album")
    ]
    await shop.h.post_update(
        shop.id, updates.callback_query("bc:go", user_id=ADMIN, message_id=104)
    )
    await wait_text(bot_api, ADMIN, "Sent: 6,")
    albums = bot_api.calls("copyMessages", bot_id=shop.bot_id)
    assert sorted(c.params["chat_id"] for c in albums) == [601, 602, 603, 604, 605, 606]
    for call in albums:
        assert call.params["message_ids"] == sorted(p["message"]["message_id"] for p in parts)
        assert "reply_markup" not in call.params
    assert bot_api.calls("copyMessage", bot_id=shop.bot_id) == []
    assert confirm.params["text"].startswith("Album")


async def test_cancel_and_who_may_send(shop: Shop, updates, bot_api):
    await shop.add_subscribers([601])
    # The core refuses commands declared for a role (register_commands) politely.
    await shop.h.post_update(shop.id, updates.command("broadcast", user_id=777))
    [refusal] = bot_api.calls("sendMessage", chat_id=777)
    assert "Broadcast" not in refusal.params["text"]
    assert "reply_markup" not in refusal.params

    await shop.h.post_update(shop.id, updates.command("broadcast", user_id=ADMIN))
    await shop.h.post_update(shop.id, updates.command("cancel", user_id=ADMIN))
    await wait_text(bot_api, ADMIN, "Broadcast cancelled.")
    # After /cancel a message is not taken for a campaign.
    await shop.h.post_update(shop.id, updates.message("hello", user_id=ADMIN))
    assert bot_api.calls("copyMessage") == []
    assert await shop.sql("SELECT id FROM {s}.broadcast_campaigns") == []

    await shop.h.post_update(shop.id, updates.command("subscribers", user_id=ADMIN))
    stats = await wait_text(bot_api, ADMIN, "Subscribers:")
    assert stats.params["text"].splitlines() == [
        "Subscribers: 1 active, 0 unsubscribed, 0 blocked.",
        "en: 1",
    ]
