"""The booking pages of a ``kind: services`` tenant in Chromium: staff columns, live bookings, the WebApp."""

from __future__ import annotations

from _web_support import ADMIN, CUSTOMER, add_salon, future_day, panel_link, webapp_url


async def test_the_salon_panel_shows_staff_and_a_webapp_booking_live(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_salon(tenantry)
    schema = config["storage"]["schema"]
    await tenantry.start()
    day = future_day(3)
    panel = await new_page(viewport={"width": 1280, "height": 900})
    await panel.goto(await panel_link(tenantry, updates, bot_api, config, "panel", ADMIN))
    await panel.wait_for_url("**/web/glow/booking/admin*")
    await panel.goto(f"{tenantry.url}/web/glow/booking/admin?date={day}")
    await panel.wait_for_selector("#live-state[data-state=live]")
    # Staff instead of tables: one card and one lane per staff member, by name.
    assert await panel.inner_text("#map-title") == "Staff"
    cards = panel.locator("#map [data-resource]")
    assert await cards.evaluate_all("(cards) => cards.map((c) => c.dataset.resource)") == [
        "anna",
        "olga",
    ]
    assert await panel.locator("#map [data-resource] b").all_inner_texts() == ["Anna", "Olga"]
    assert await panel.locator("#timeline .lane > span").all_inner_texts() == ["Anna", "Olga"]
    assert await panel.locator("#block-form select[name=resource] option").all_inner_texts() == [
        "the whole place",
        "Anna",
        "Olga",
    ]

    # The customer picks a service and a staff member in the WebApp.
    app = await new_page()
    await app.goto(webapp_url(tenantry, config, "booking/app", CUSTOMER, "Kate"))
    assert await app.locator("#service option").all_inner_texts() == ["Haircut", "Coloring"]
    assert await app.locator("#staff option").all_inner_texts() == ["anyone", "Anna", "Olga"]
    await app.select_option("#service", "coloring")
    assert await app.locator("#staff option").all_inner_texts() == ["anyone", "Anna"]
    await app.select_option("#service", "haircut")
    await app.select_option("#staff", "olga")
    await app.select_option("#date", day.isoformat())
    await app.click("#find")
    await app.click("#times button:has-text('11:00')")
    await app.fill("#name", "Kate")
    await app.fill("#phone", "+79990003344")
    await app.click("#confirm")
    await app.wait_for_selector("#form-ok:not([hidden])")
    [row] = await tenantry.sql(f'SELECT id, service_code, status, source FROM "{schema}".bookings')
    assert (row["service_code"], row["status"], row["source"]) == ("haircut", "pending", "webapp")
    kate = row["id"]

    # On the open panel within a second, with its notice, in Olga's column.
    await panel.wait_for_selector(f"#booking-{kate}[data-status=pending]", timeout=1000)
    await panel.wait_for_selector(f".toast:has-text('New booking #{kate}: Kate')", timeout=1000)
    assert await panel.inner_text("#map [data-resource=olga] .who") == "next 11:00 · Kate"
    assert await panel.inner_text("#map [data-resource=anna] .who") == "free"
    lane = panel.locator("#timeline .lane:has(> span:text-is('Olga')) .span")
    assert await lane.all_inner_texts() == ["11:00 Kate"]
    assert "Haircut" in await panel.inner_text(f"#booking-{kate}")
    buttons = panel.locator(f"#booking-{kate} .actions button")
    assert await buttons.evaluate_all("(bs) => bs.map((b) => b.dataset.to)") == [
        "confirmed",
        "cancelled",
    ]
    await screens.shot(panel, "booking-admin-services")

    # The admin confirms; the customer's "My bookings" says so.
    await panel.click(f"#booking-{kate} button[data-to=confirmed]")
    await panel.wait_for_selector(f"#booking-{kate}[data-status=confirmed]")
    await app.click("#tab-mine")
    card = await app.wait_for_selector(f"#my-booking-{kate}[data-status=confirmed]")
    assert "Haircut" in await card.inner_text()
    await screens.shot(app, "booking-webapp-services")
