"""The booking pages in Chromium: the admins' live panel and the customers' WebApp."""

from __future__ import annotations

import asyncio

from _web_support import ADMIN, Guest, add_restaurant, future_day, panel_link, webapp_url


async def test_a_booking_made_in_the_bot_appears_on_the_open_panel(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_restaurant(tenantry)
    schema = config["storage"]["schema"]
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
    [anna] = await tenantry.sql(f'SELECT id FROM "{schema}".bookings')
    [table] = (await _booking(tenantry, anna["id"]))["resources"]
    # The map, grouped by zone; the booked table says who comes next.
    assert await page.locator("#map .zone h3").all_inner_texts() == ["hall", "veranda"]
    assert await _resources_of_zone(page, "hall") == ["t1", "t2"]
    assert await _resources_of_zone(page, "veranda") == ["v1"]
    assert await page.inner_text(f"#map [data-resource={table}] .who") == "next 19:00 · Anna"
    # The day: the booking is a span on its table's lane, from opening (10:00) to closing.
    assert await page.locator(".hours span").all_inner_texts() == ["10:00", "23:00"]
    assert await _lane(page, table) == ["19:00 Anna"]
    await screens.shot(page, "booking-admin")

    # Exactly the moves the tenant's machine allows an admin, as buttons.
    assert await _moves(page, anna["id"]) == ["seated", "cancelled", "no_show"]
    await page.click(f"#booking-{anna['id']} button[data-to=seated]")
    await page.wait_for_selector(f"#booking-{anna['id']}[data-status=seated]")
    [row] = await tenantry.sql(f'SELECT status FROM "{schema}".bookings')
    assert row["status"] == "seated"
    assert await page.inner_text(f"#map [data-resource={table}] .who") == "seated: Anna"
    assert await _moves(page, anna["id"]) == ["completed"]

    # A booking made through the API, on the veranda: live, with its notice, within a second.
    made = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json={
            "starts_at": f"{day}T20:30:00+03:00",
            "customer_name": "Vera",
            "phone": "+79990002233",
            "party_size": 5,
            "table": "v1",
        },
        headers=tenantry.api_headers("filin"),
    )
    assert made.status_code == 201, made.text
    vera = made.json()["id"]
    await page.wait_for_selector(f"#booking-{vera}[data-status=confirmed]", timeout=1000)
    await page.wait_for_selector(f".toast:has-text('New booking #{vera}: Vera')", timeout=1000)
    assert await _lane(page, "v1") == ["20:30 Vera"]
    assert (await page.inner_text("#fig-bookings"), await page.inner_text("#fig-covers")) == (
        "2",
        "7",
    )
    # Vera does not come: a no-show leaves the covers and counts as one.
    await page.click(f"#booking-{vera} button[data-to=no_show]")
    await page.wait_for_selector(f"#booking-{vera}[data-status=no_show]")
    assert await _figures(page) == ("2", "2", "1")
    assert await page.inner_text("#map [data-resource=v1] .who") == "free"
    assert await _moves(page, vera) == []

    # Changed through the API (another admin's tool): the panel follows within a second.
    done = await tenantry.client.post(
        f"/api/tenants/filin/booking/bookings/{anna['id']}/status",
        json={"status": "completed"},
        headers=tenantry.api_headers("filin"),
    )
    assert done.status_code == 200, done.text
    await page.wait_for_selector(f"#booking-{anna['id']}[data-status=completed]", timeout=1000)
    await page.wait_for_selector(
        f".toast:has-text('Booking #{anna['id']}: completed')", timeout=1000
    )
    assert await page.inner_text(f"#map [data-resource={table}] .who") == "free"


async def _booking(tenantry, booking_id):
    response = await tenantry.client.get(
        f"/api/tenants/filin/booking/bookings/{booking_id}", headers=tenantry.api_headers("filin")
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _resources_of_zone(page, zone):
    cards = page.locator(f"#map .zone:has(h3:text-is('{zone}')) [data-resource]")
    return await cards.evaluate_all("(cards) => cards.map((card) => card.dataset.resource)")


async def _lane(page, resource):
    """The spans on the timeline lane of ``resource``."""
    lane = page.locator(f"#timeline .lane:has(> span:text-is('{resource}')) .span")
    return await lane.all_inner_texts()


async def _moves(page, booking_id):
    buttons = page.locator(f"#booking-{booking_id} .actions button")
    return await buttons.evaluate_all("(buttons) => buttons.map((button) => button.dataset.to)")


async def _figures(page):
    return tuple(
        [await page.inner_text(f"#fig-{name}") for name in ("bookings", "covers", "no-shows")]
    )


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
