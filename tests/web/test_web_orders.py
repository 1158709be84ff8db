"""The orders pages in Chromium: the partners' live panel and the customers' ordering WebApp."""

from __future__ import annotations

from _web_support import CUSTOMER, FLORIST, PARTNER, add_market, panel_link, place_order, webapp_url

import core.testing.plugin as harness_module

RECORD_TOASTS = """() => {
  window.toastLog = [];
  new MutationObserver((changes) => changes.forEach((change) => change.addedNodes.forEach(
    (node) => window.toastLog.push(node.textContent)))).observe(
    document.getElementById("toasts"), {childList: true});
}"""


async def _open_panel(tenantry, updates, bot_api, config, new_page, user_id=PARTNER):
    page = await new_page()
    link = await panel_link(tenantry, updates, bot_api, config, "storepanel", user_id)
    await page.goto(link)
    await page.wait_for_url("**/web/market/orders/partner/*")
    await page.wait_for_selector("#live-state[data-state=live]")
    await page.evaluate(RECORD_TOASTS)
    return page


async def test_an_order_from_the_webapp_reaches_the_panel_and_its_status_comes_back(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_market(tenantry)
    await tenantry.start()
    panel = await _open_panel(tenantry, updates, bot_api, config, new_page)
    assert panel.url.endswith("/web/market/orders/partner/bakery")
    await panel.wait_for_selector("text=No orders yet.")

    shop = await new_page()
    await shop.goto(webapp_url(tenantry, config, "orders/app", CUSTOMER, "Anna"))
    await shop.click("button[data-store=bakery]")
    await shop.click(".item:has-text('Baguette') button")
    await shop.click(".item:has-text('Baguette') button")
    await shop.click("#types button[data-type=delivery]")
    await shop.fill("#phone", "+79990001122")
    # Delivery without an address: refused in words before anything is sent.
    await shop.click("#place")
    error = await shop.wait_for_selector("#checkout-error:not([hidden])")
    assert "address" in (await error.inner_text()).lower()
    await screens.shot(shop, "orders-webapp-error")
    schema = config["storage"]["schema"]
    assert await tenantry.sql(f'SELECT id FROM "{schema}".orders') == []

    await shop.fill("#address", "Main street 1")
    await screens.shot(shop, "orders-webapp-cart")
    await shop.click("#place")
    await shop.wait_for_selector("#my-order-1[data-status=pending]")
    [order] = await tenantry.sql(f'SELECT id, type, total, status, address FROM "{schema}".orders')
    assert order == {
        "id": 1,
        "type": "delivery",
        "total": 39000,
        "status": "pending",
        "address": "Main street 1",
    }

    # The panel: the order, a toast and the badge, without a reload.
    await panel.wait_for_selector("#order-1.fresh[data-status=pending]")
    await panel.wait_for_selector("#badge:not([hidden]):has-text('1')")
    assert any("New order #1" in text for text in await panel.evaluate("window.toastLog"))
    await panel.wait_for_selector("#order-1:has-text('Main street 1')")
    await screens.shot(panel, "orders-partner")

    # The partner accepts; the customer's page shows the new status by itself.
    await panel.click("#order-1 button[data-to=preparing]")
    await panel.wait_for_selector("#order-1[data-status=preparing]")
    await panel.wait_for_selector("#badge[hidden]", state="attached")
    await shop.wait_for_selector("#my-order-1[data-status=preparing]", timeout=5000)
    await screens.shot(shop, "orders-webapp-mine")
    [row] = await tenantry.sql(
        f'SELECT role, actor_id FROM "{schema}".order_history WHERE to_status = $1', "preparing"
    )
    assert row == {"role": "partner", "actor_id": PARTNER}

    # Rejecting needs a reason; without one the dialog says so and nothing moves.
    await shop.click("#tab-shop")
    await shop.click(".item:has-text('Rye') button")
    await shop.click(".item:has-text('Rye') button")
    await shop.click(".item:has-text('Rye') button")
    await shop.click("#place")
    await panel.wait_for_selector("#order-2[data-status=pending]")
    # Newest first; a new order offers exactly the partner's moves of the machine.
    order_ids = await panel.locator("#orders article").evaluate_all("(a) => a.map((o) => o.id)")
    assert order_ids == ["order-2", "order-1"]
    assert await _moves(panel, 2) == ["preparing", "rejected"]
    await panel.click("#order-2 button[data-to=rejected]")
    await panel.click("#reject-ok")
    assert await panel.inner_text("#reject-error") == "Please give a reason."
    await panel.fill("#reject-form textarea", "out of rye today")
    await panel.click("#reject-ok")
    await panel.wait_for_selector("#order-2[data-status=rejected]")
    await shop.wait_for_selector("#my-order-2[data-status=rejected]")
    # The reason is kept, and the customer reads it on their page.
    [entry] = await tenantry.sql(
        f'SELECT reason, role FROM "{schema}".order_history WHERE to_status = $1', "rejected"
    )
    assert entry == {"reason": "out of rye today", "role": "partner"}
    reason = await shop.wait_for_selector("#my-order-2 .reason")
    assert await reason.inner_text() == "Reason: out of rye today"
    assert await _moves(panel, 2) == []

    # The delivery order goes on as the machine allows a delivery: ready, out, completed.
    for status, moves in (
        ("preparing", ["ready"]),
        ("ready", ["delivering"]),
        ("delivering", ["completed"]),
        ("completed", []),
    ):
        await panel.wait_for_selector(f"#order-1[data-status={status}]")
        assert await _moves(panel, 1) == moves, status
        if moves:
            await panel.click(f"#order-1 button[data-to={moves[0]}]")
    await shop.wait_for_selector("#my-order-1[data-status=completed]", timeout=5000)
    history = await tenantry.sql(
        f'SELECT to_status FROM "{schema}".order_history WHERE order_id = 1 ORDER BY id'
    )
    assert [h["to_status"] for h in history] == [
        "pending",
        "preparing",
        "ready",
        "delivering",
        "completed",
    ]
    await screens.shot(panel, "orders-partner-moves")


async def _moves(page, order_id):
    buttons = page.locator(f"#order-{order_id} .actions button")
    return await buttons.evaluate_all("(buttons) => buttons.map((button) => button.dataset.to)")


async def test_a_restart_while_the_panel_is_open_loses_no_event(
    tenantry, updates, bot_api, new_page, screens, monkeypatch
):
    config = add_market(tenantry)
    await tenantry.start()
    port = int(tenantry.url.rsplit(":", 1)[1])
    panel = await _open_panel(tenantry, updates, bot_api, config, new_page)
    items = {
        r["sku"]: r["id"]
        for r in await tenantry.sql(f'SELECT sku, id FROM "{config["storage"]["schema"]}".items')
    }

    await tenantry.stop()
    await panel.wait_for_selector("#live-state[data-state=offline]")
    await screens.shot(panel, "orders-partner-offline")
    # The page stays cut off until the orders below are placed, so it must catch up on them.
    await panel.context.set_offline(True)
    # The same address again: the page reconnects to where it was.
    monkeypatch.setattr(harness_module, "free_port", lambda: port)
    await tenantry.start()
    for _ in range(2):
        await place_order(tenantry, config, "bakery", items["baguette"], 2)
    assert await panel.get_attribute("#live-state", "data-state") != "live"
    await panel.context.set_offline(False)
    await panel.wait_for_selector("#live-state[data-state=live]", timeout=15000)
    await panel.wait_for_selector("#order-2[data-status=pending]")
    await panel.wait_for_selector("#order-1[data-status=pending]")
    # Delivered as events after the cursor (replayed), not only read again over HTTP.
    await panel.wait_for_function(
        "window.toastLog.filter((t) => t.startsWith('New order #')).length === 2"
    )
    assert await panel.inner_text("#badge") == "2"


async def test_a_partner_cannot_open_another_stores_panel(
    tenantry, updates, bot_api, new_page, screens
):
    config = add_market(tenantry)
    await tenantry.start()
    florist = await _open_panel(tenantry, updates, bot_api, config, new_page, user_id=FLORIST)
    assert florist.url.endswith("/web/market/orders/partner/flowers")

    response = await florist.goto(f"{tenantry.url}/web/market/orders/partner/bakery")
    assert response.status == 403
    assert await florist.inner_text("#forbidden") == "Not allowed"
    await screens.shot(florist, "orders-partner-forbidden")
    # The JSON routes refuse too, whatever the page shows.
    listing = await florist.request.get(f"{tenantry.url}/web/market/orders/partner/bakery/orders")
    assert listing.status == 403
    assert (await listing.json())["code"] == "orders.store_out_of_scope"

    [item] = await tenantry.sql(
        f'SELECT id FROM "{config["storage"]["schema"]}".items WHERE sku = $1', "baguette"
    )
    order_id = (await place_order(tenantry, config, "bakery", item["id"], 2))["id"]
    moved = await florist.request.post(
        f"{tenantry.url}/web/market/orders/orders/{order_id}/status",
        data={"status": "preparing"},
        headers={"X-Tenantry-Web": "1"},
    )
    assert moved.status in (403, 404)
    # Without the page header a write is refused before anything else (cross-site forms).
    forged = await florist.request.post(
        f"{tenantry.url}/web/market/orders/orders/{order_id}/status", data={"status": "preparing"}
    )
    assert (await forged.json())["code"] == "web.header_required"
    [row] = await tenantry.sql(f'SELECT status FROM "{config["storage"]["schema"]}".orders')
    assert row["status"] == "pending"

    # Nor live: the florist's tickets follow the flowers store only, and its open panel shows
    # the next flowers order but never the bakery's.
    ticket = await florist.request.post(
        f"{tenantry.url}/web/market/realtime/ticket", headers={"X-Tenantry-Web": "1"}
    )
    assert (await ticket.json())["topics"] == ["orders:flowers"]
    await florist.goto(f"{tenantry.url}/web/market/orders/partner/flowers")
    await florist.wait_for_selector("#live-state[data-state=live]")
    await florist.evaluate(RECORD_TOASTS)
    [tulips] = await tenantry.sql(
        f'SELECT id FROM "{config["storage"]["schema"]}".items WHERE sku = $1', "tulips"
    )
    await place_order(tenantry, config, "bakery", item["id"], 2)
    flowers = await place_order(tenantry, config, "flowers", tulips["id"], 1)
    await florist.wait_for_selector(f"#order-{flowers['id']}[data-status=pending]")
    shown = await florist.locator("#orders article").evaluate_all("(a) => a.map((o) => o.id)")
    assert shown == [f"order-{flowers['id']}"]
    toasts = await florist.evaluate("window.toastLog")
    assert [text.split(":")[0] for text in toasts] == [f"New order #{flowers['id']}"]

    # Signed out, the panel sends you to sign in.
    await florist.goto(f"{tenantry.url}/web/market/orders/partner/flowers")
    await florist.click("text=Sign out")
    await florist.wait_for_url("**/web/market/signin")
    again = await florist.goto(f"{tenantry.url}/web/market/orders/partner/flowers")
    assert again.url.startswith(f"{tenantry.url}/web/market/signin?next=")
