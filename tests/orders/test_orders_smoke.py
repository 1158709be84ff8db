"""A first end-to-end slice: seeded catalog, WebApp order, partner notification."""

from __future__ import annotations

from conftest import PARTNER_A, PARTNER_B


async def test_webapp_order_reaches_partners(market, bot_api):
    catalog = await market.h.client.get(f"{market.base}/catalog", headers=market.webapp())
    assert catalog.status_code == 200, catalog.text
    order = await market.pickup_order()
    assert order["total"] == 24000
    for partner in (PARTNER_A, PARTNER_B):
        [call] = await bot_api.wait_for("sendMessage", bot_id=market.bot_id, chat_id=partner)
        assert "#%d" % order["id"] in call.params["text"]
