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

import core.testing.plugin as harness_module
from core.testing.updates import webapp_init_data
from core.web.sessions import LINK_SECONDS, SESSION_SECONDS


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
    # On the day's timeline, in v1's lane; "Remove" lifts it.
    blocked = page.locator("#timeline .lane:has(> span:text-is('v1')) .span.blocked")
    assert await blocked.all_inner_texts() == ["private party"]
    await page.click("#blocks .item:has-text('private party') button")
    await page.wait_for_selector("#blocks .item", state="detached")
    assert await blocked.count() == 0
    assert await tenantry.sql(f'SELECT id FROM "{config["storage"]["schema"]}".blocked_slots') == []


async def test_links_work_once_and_customers_get_no_session(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_market(tenantry)
    await tenantry.start()
    link = await panel_link(tenantry, updates, bot_api, config, "storepanel", PARTNER)
    # A link expires: Redis drops it after LINK_SECONDS.
    prefix = config["storage"]["redis_prefix"]
    [key] = [k async for k in tenantry.runtime.redis.scan_iter(f"{prefix}web:link:*")]
    assert 0 < await tenantry.runtime.redis.ttl(key) <= LINK_SECONDS
    first = await new_page()
    await first.goto(link)
    await first.wait_for_url("**/web/market/orders/partner/bakery")

    second = await new_page()
    await second.goto(link)
    await second.wait_for_selector("text=This link was already used or has expired.")
    assert await second.context.cookies() == []
    await screens.shot(second, "signin-link-used")

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
    # Telegram's fragment goes along (the next page loads Telegram's script with it).
    await page.wait_for_url(
        lambda url: url.startswith(f"{tenantry.url}/web/market/orders/partner#tgWebAppData=")
    )
    assert await page.locator(".links a").all_inner_texts() == ["Bakery", "Flowers"]


async def test_an_expired_session_sends_the_open_panel_to_sign_in(
    tenantry, new_page, screens, monkeypatch
):
    config = add_restaurant(tenantry)
    await tenantry.start()
    port = int(tenantry.url.rsplit(":", 1)[1])
    redis = tenantry.runtime.redis
    prefix = config["storage"]["redis_prefix"]
    day = future_day(5)
    panel_url = f"{tenantry.url}/web/filin/booking/admin?date={day}"
    page = await new_page(viewport={"width": 1024, "height": 800})
    await page.goto(panel_url)
    await page.fill("input[name=key]", tenantry.api_key("filin"))
    await page.click("button[type=submit]")
    await page.wait_for_selector("#live-state[data-state=live]")

    # The session runs out while the runtime restarts: on reconnecting, the page's ticket is
    # refused, and it goes to sign in again (not "reconnecting" forever), saying why.
    [key] = [k async for k in redis.scan_iter(f"{prefix}web:session:*")]
    await tenantry.stop()
    await page.wait_for_selector("#live-state[data-state=offline]")
    await redis.pexpire(key, 1)
    monkeypatch.setattr(harness_module, "free_port", lambda: port)
    await tenantry.start()
    await page.wait_for_url("**/web/filin/signin?expired=1&next=*", timeout=15000)
    assert await page.inner_text("#signin-error") == (
        "Please sign in again: your session has expired."
    )
    await screens.shot(page, "signin-expired")
    # Signing in again opens the panel where it was.
    await page.fill("input[name=key]", tenantry.api_key("filin"))
    await page.click("button[type=submit]")
    await page.wait_for_url(panel_url)
    await page.wait_for_selector("#live-state[data-state=live]")

    # A session ended under an open page: its next request goes to sign in too.
    [key] = [k async for k in redis.scan_iter(f"{prefix}web:session:*")]
    await redis.delete(key)
    await page.click("#today")
    await page.wait_for_url("**/web/filin/signin?expired=1&next=*")
    assert await page.inner_text("#signin-error") == (
        "Please sign in again: your session has expired."
    )
