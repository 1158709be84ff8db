"""The booking pages in Chromium: the admins' live panel and the customers' WebApp."""

from __future__ import annotations

import asyncio

from _web_support import ADMIN, Guest, add_restaurant, future_day, panel_link, webapp_url


async def test_a_booking_made_in_the_bot_appears_on_the_open_panel(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_restaurant(tenantry)
    await tenantry.start()
    day = future_day(2)
    page = await new_page(viewport={"width": 1280, "height": 900})

    # The admin asks the bot for the panel and opens the one-time link.
    link = await panel_link(tenantry, updates, bot_api, config, "panel", ADMIN)
    await page.goto(link)
    await page.wait_for_url("**/web/filin/booking/admin*")
    await page.goto(f"{tenantry.url}/web/filin/booking/admin?date={day}")
    await page.wait_for_selector("#live-state[data-state=live]")
    await page.wait_for_selector("text=No bookings on this day.")

    guest = Guest(tenantry, updates, bot_api, config, user_id=4242)
    summary = await guest.book(day, "19:00", 2, "Anna", "79990001122")
    done = await guest.tap(summary, "Confirm")
    assert done.params["text"].startswith("Booked! #")
    # Live, without reload: the list, the map, the figures and a notice, within a second.
    item = await page.wait_for_selector("article.item:has-text('Anna')", timeout=1000)
    assert "19:00" in await item.inner_text()
    await page.wait_for_selector(".toast:has-text('New booking')", timeout=1000)
    assert await page.inner_text("#fig-bookings") == "1"
    assert await page.inner_text("#fig-covers") == "2"
    assert "next 19:00 · Anna" in await page.inner_text("#map")
    await screens.shot(page, "booking-admin")

    # The allowed moves are buttons; seating the guests goes through the machine.
    await item.query_selector("button[data-to=seated]")
    await page.click("article.item:has-text('Anna') button[data-to=seated]")
    await page.wait_for_selector("article.item[data-status=seated]")
    [row] = await tenantry.sql(f'SELECT status FROM "{config["storage"]["schema"]}".bookings')
    assert row["status"] == "seated"
    assert "seated: Anna" in await page.inner_text("#map")


async def test_the_customer_books_in_the_webapp_and_bad_input_is_refused(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_restaurant(tenantry)
    await tenantry.start()
    day = future_day(3)
    page = await new_page()
    await page.goto(webapp_url(tenantry, config, "booking/app", 5001, "Boris"))
    await page.select_option("#date", day.isoformat())
    await page.select_option("#party", "4")
    await page.click("#find")
    await page.click("#times button:has-text('20:00')")
    await page.fill("#name", "Boris")

    # A phone that is not one: the server refuses, the page says why in words; nothing is written.
    await page.fill("#phone", "12")
    await page.click("#confirm")
    error = await page.wait_for_selector("#form-error:not([hidden])")
    assert await error.inner_text() == "that does not look like a phone number"
    await screens.shot(page, "booking-webapp-error")
    schema = config["storage"]["schema"]
    assert await tenantry.sql(f'SELECT id FROM "{schema}".bookings') == []

    await page.fill("#phone", "+7 999 000-11-22")
    await page.click("#confirm")
    ok = await page.wait_for_selector("#form-ok:not([hidden])")
    assert f"{day.isoformat()} 20:00" in await ok.inner_text()
    [row] = await tenantry.sql(
        f'SELECT user_id, party_size, phone, source FROM "{schema}".bookings'
    )
    assert row == {"user_id": 5001, "party_size": 4, "phone": "+79990001122", "source": "webapp"}
    await screens.shot(page, "booking-webapp")

    await page.click("#tab-mine")
    await page.click("#mine-list button.danger")
    await page.wait_for_selector("text=You have no upcoming bookings.")
    [row] = await tenantry.sql(f'SELECT status FROM "{schema}".bookings')
    assert row["status"] == "cancelled"
    await asyncio.sleep(0)
