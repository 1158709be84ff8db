"""Staff sign-in in Chromium: API keys, one-time links, WebApp init data; sessions in Redis."""

from __future__ import annotations

from urllib.parse import quote

from _web_support import (
    ADMIN,
    CUSTOMER,
    PARTNER,
    add_market,
    add_restaurant,
    future_day,
    panel_link,
)

from core.testing.updates import webapp_init_data
from core.web.sessions import SESSION_SECONDS


async def test_api_key_sign_in_and_the_block_form(tenantry, new_page, screens):
    config = add_restaurant(tenantry)
    await tenantry.start()
    page = await new_page(viewport={"width": 1024, "height": 800})
    day = future_day(4)
    await page.goto(f"{tenantry.url}/web/filin/booking/admin?date={day}")
    await page.wait_for_url("**/web/filin/signin?next=*")

    await page.fill("input[name=key]", "not-a-key")
    await page.click("button[type=submit]")
    assert (
        await page.inner_text("#signin-error") == "This key is not one of this tenant's API keys."
    )
    await screens.shot(page, "signin")

    await page.fill("input[name=key]", tenantry.api_key("filin"))
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**/web/filin/booking/admin?date={day}")
    [cookie] = await page.context.cookies()
    assert (cookie["name"], cookie["path"], cookie["httpOnly"], cookie["sameSite"]) == (
        "tenantry_session",
        "/web/filin/",
        True,
        "Lax",
    )
    # The session lives in the tenant's Redis prefix, expiring, under the token's digest only.
    prefix = config["storage"]["redis_prefix"]
    [key] = [k async for k in tenantry.runtime.redis.scan_iter(f"{prefix}web:session:*")]
    assert cookie["value"] not in key
    assert 0 < await tenantry.runtime.redis.ttl(key) <= SESSION_SECONDS

    # The block form: an end before the start is refused in words; a good one is shown.
    await page.fill("#block-form input[name=starts]", "18:00")
    await page.fill("#block-form input[name=ends]", "17:00")
    await page.click("#block-form button[type=submit]")
    assert await page.inner_text("#block-error") == (
        "Enter both times as HH:MM, the end after the start."
    )
    await page.fill("#block-form input[name=ends]", "20:00")
    await page.select_option("#block-form select[name=resource]", "v1")
    await page.fill("#block-form input[name=reason]", "private party")
    await page.click("#block-form button[type=submit]")
    await page.wait_for_selector("#blocks .item:has-text('private party')")
    [row] = await tenantry.sql(
        f'SELECT reason, created_by FROM "{config["storage"]["schema"]}".blocked_slots'
    )
    assert row == {"reason": "private party", "created_by": "api"}


async def test_links_work_once_and_customers_get_no_session(tenantry, updates, bot_api, new_page):
    config = add_market(tenantry)
    await tenantry.start()
    link = await panel_link(tenantry, updates, bot_api, config, "storepanel", PARTNER)
    first = await new_page()
    await first.goto(link)
    await first.wait_for_url("**/web/market/orders/partner/bakery")

    second = await new_page()
    await second.goto(link)
    await second.wait_for_selector("text=This link was already used or has expired.")
    assert await second.context.cookies() == []

    # A customer cannot sign in with WebApp init data: the pages are for staff.
    customer = webapp_init_data(config["bot"]["token"], {"id": CUSTOMER, "first_name": "Anna"})
    refused = await tenantry.client.post(
        "/web/market/signin/webapp", json={}, headers={"X-Telegram-Init-Data": customer}
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "web.not_staff")
    # An admin can: inside Telegram the sign-in page does it by itself.
    admin = webapp_init_data(config["bot"]["token"], {"id": ADMIN, "first_name": "Olga"})
    page = await new_page()
    await page.goto(
        f"{tenantry.url}/web/market/signin?next=/web/market/orders/partner#tgWebAppData="
        + quote(admin, safe="")
    )
    await page.wait_for_url("**/web/market/orders/partner")
    assert await page.locator(".links a").all_inner_texts() == ["Bakery", "Flowers"]
