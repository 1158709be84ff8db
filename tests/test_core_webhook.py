"""Two tenants served at once through their webhooks, isolated from each other."""

from __future__ import annotations


async def test_start_stores_user_and_answers_welcome(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin", texts={"welcome": "Welcome to Filin"})
    glow = tenantry.add_tenant("glow", locale="ru")
    await tenantry.start()

    response = await tenantry.post_update("filin", updates.command("start", user_id=501, first_name="Anna"))
    assert response.status_code == 200, response.text
    response = await tenantry.post_update("glow", updates.command("start", user_id=502))
    assert response.status_code == 200, response.text

    filin_bot = int(filin["bot"]["token"].split(":")[0])
    glow_bot = int(glow["bot"]["token"].split(":")[0])
    [filin_reply] = bot_api.calls("sendMessage", bot_id=filin_bot)
    assert filin_reply.params["chat_id"] == 501
    assert filin_reply.params["text"] == "Welcome to Filin"
    [glow_reply] = bot_api.calls("sendMessage", bot_id=glow_bot)
    assert glow_reply.params["text"].startswith("Здравствуйте")

    filin_schema = filin["storage"]["schema"]
    glow_schema = glow["storage"]["schema"]
    assert await tenantry.sql(f'SELECT telegram_id, first_name FROM "{filin_schema}".users') == [
        {"telegram_id": 501, "first_name": "Anna"}
    ]
    assert [r["telegram_id"] for r in await tenantry.sql(f'SELECT telegram_id FROM "{glow_schema}".users')] == [502]
