"""The pages inside Telegram: theme colours, the main button and haptics, with a stand-in of Telegram's script.

Telegram's ``telegram-web-app.js`` is answered by ``telegram_web_app_stub.js``
(``new_page(telegram=True)``), which behaves as Telegram documents it: theme
parameters become ``--tg-theme-*`` CSS variables, ``Telegram.WebApp`` offers
``MainButton`` and ``HapticFeedback``, and every call is kept in
``window.tgCalls``.
"""

from __future__ import annotations

from urllib.parse import quote

from _web_support import (
    CUSTOMER,
    PARTNER,
    add_market,
    add_restaurant,
    future_day,
    place_order,
    webapp_url,
)

from core.testing.updates import webapp_init_data

BG = "rgb(23, 33, 43)"  # THEME["bg_color"] #17212b
BUTTON = "rgb(82, 136, 193)"  # THEME["button_color"] #5288c1
CARD = "rgb(35, 46, 60)"  # THEME["secondary_bg_color"] #232e3c


async def _calls(page, name):
    return [call for call in await page.evaluate("window.tgCalls") if call[0] == name]


async def test_the_booking_webapp_books_with_telegrams_main_button_and_theme(
    tenantry, new_page, screens
):
    config = add_restaurant(tenantry)
    await tenantry.start()
    day = future_day(3)
    page = await new_page(telegram=True)
    await page.goto(webapp_url(tenantry, config, "booking/app", CUSTOMER, "Boris", telegram=True))
    await page.wait_for_function("window.tgCalls && window.tgCalls.some((c) => c[0] === 'ready')")
    # Telegram's theme colours, through the --tg-theme-* variables of app.css.
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == BG
    assert (
        await page.evaluate("getComputedStyle(document.getElementById('book')).backgroundColor")
        == CARD
    )
    assert (
        await page.evaluate("getComputedStyle(document.getElementById('confirm')).backgroundColor")
        == BUTTON
    )
    # The name comes from Telegram's user.
    assert await page.input_value("#name") == "Boris"

    await page.select_option("#date", day.isoformat())
    await page.select_option("#party", "3")
    await page.click("#find")
    await page.click("#times button:has-text('19:30')")
    assert (await _calls(page, "MainButton.setText"))[-1] == ["MainButton.setText", "Book · 19:30"]
    assert await page.evaluate("Telegram.WebApp.MainButton.isVisible")
    await page.fill("#phone", "+79990001122")
    await page.evaluate("window.tgPressMainButton()")
    await page.wait_for_selector("#form-ok:not([hidden])")
    assert await _calls(page, "haptic") == [["haptic", "success"]]
    assert not await page.evaluate("Telegram.WebApp.MainButton.isVisible")
    await screens.shot(page, "booking-webapp-telegram")
    [row] = await tenantry.sql(
        f'SELECT user_id, party_size, source FROM "{config["storage"]["schema"]}".bookings'
    )
    assert row == {"user_id": CUSTOMER, "party_size": 3, "source": "webapp"}


async def test_the_ordering_webapp_checks_out_with_the_main_button(tenantry, new_page, screens):
    config = add_market(tenantry)
    await tenantry.start()
    page = await new_page(telegram=True)
    await page.goto(webapp_url(tenantry, config, "orders/app", CUSTOMER, "Anna", telegram=True))
    await page.click("button[data-store=bakery]")
    assert not await page.evaluate("Telegram.WebApp.MainButton.isVisible")
    await page.click(".item:has-text('Baguette') button")
    await page.click(".item:has-text('Baguette') button")
    assert await page.evaluate("Telegram.WebApp.MainButton.isVisible")
    assert await page.evaluate("Telegram.WebApp.MainButton.text") == "Place the order"
    await page.fill("#phone", "+79990001122")
    await page.evaluate("window.tgPressMainButton()")
    await page.wait_for_selector("#my-order-1[data-status=pending]")
    assert ["haptic", "success"] in await _calls(page, "haptic")
    assert not await page.evaluate("Telegram.WebApp.MainButton.isVisible")
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == BG
    await screens.shot(page, "orders-webapp-telegram")
    [row] = await tenantry.sql(
        f'SELECT customer_id, type, total FROM "{config["storage"]["schema"]}".orders'
    )
    assert row == {"customer_id": CUSTOMER, "type": "pickup", "total": 24000}


async def test_a_partner_signed_in_by_the_webapp_gets_haptics_for_new_orders(
    tenantry, new_page, screens
):
    config = add_market(tenantry)
    await tenantry.start()
    partner = webapp_init_data(config["bot"]["token"], {"id": PARTNER, "first_name": "Petr"})
    page = await new_page(telegram=True)
    await page.goto(
        f"{tenantry.url}/web/market/signin?next=/web/market/orders/partner/bakery"
        f"#tgWebAppData={quote(partner, safe='')}&tgWebAppVersion=8.0"
    )
    await page.wait_for_url(
        lambda url: url.startswith(f"{tenantry.url}/web/market/orders/partner/bakery#")
    )
    await page.wait_for_selector("#live-state[data-state=live]")
    await page.wait_for_function("window.Telegram && window.tgCalls.some((c) => c[0] === 'ready')")

    [item] = await tenantry.sql(
        f'SELECT id FROM "{config["storage"]["schema"]}".items WHERE sku = $1', "rye"
    )
    await place_order(tenantry, config, "bakery", item["id"], 3)
    await page.wait_for_selector("#order-1.fresh")
    await page.wait_for_function("window.tgCalls.some((c) => c[0] === 'haptic')")
    assert await _calls(page, "haptic") == [["haptic", "success"]]
    await screens.shot(page, "orders-partner-telegram")
