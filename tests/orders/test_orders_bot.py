"""The bot flows, driven through the webhook: catalog, cart, checkout, partner and customer buttons."""

from __future__ import annotations

from typing import Any

from conftest import ADMIN, CUSTOMER, OTHER_CUSTOMER, PARTNER_A, PARTNER_B


def buttons(call: Any) -> dict[str, str]:
    """callback_data -> text of an inline keyboard in a recorded call."""
    markup = call.params.get("reply_markup") or {}
    return {
        b["callback_data"]: b["text"]
        for row in markup.get("inline_keyboard", [])
        for b in row
        if "callback_data" in b
    }


async def post(market, update: dict[str, Any]) -> None:
    response = await market.h.post_update(market.id, update)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "duplicate": False}


async def press(market, updates, user_id: int, data: str, message_id: int = 1) -> None:
    await post(
        market,
        updates.callback_query(data, user_id=user_id, message_id=message_id, bot_id=market.bot_id),
    )


def last(bot_api, method: str, market, chat_id: int) -> Any:
    calls = bot_api.calls(method, bot_id=market.bot_id, chat_id=chat_id)
    assert calls, f"no {method} to {chat_id}"
    return calls[-1]


def last_answer(bot_api, market) -> Any:
    return bot_api.calls("answerCallbackQuery", bot_id=market.bot_id)[-1]


async def fill_cart(market, updates, bot_api, user_id: int = CUSTOMER) -> dict[str, int]:
    """Browse /menu -> Bakery -> Bread and add two baguettes; return sku -> item id."""
    ids = await market.item_ids()
    await post(market, updates.command("menu", user_id=user_id))
    assert set(buttons(last(bot_api, "sendMessage", market, user_id))) == {
        "om:s:bakery",
        "om:s:flowers",
    }
    await press(market, updates, user_id, "om:s:bakery")
    categories = last(bot_api, "editMessageText", market, user_id)
    assert list(buttons(categories)) == ["om:c:bread", "om:c:pastry", "om:h"]
    await press(market, updates, user_id, "om:c:bread")
    items = buttons(last(bot_api, "editMessageText", market, user_id))
    assert items[f"om:a:{ids['baguette']}"] == "Baguette — RUB\u00a0120.00"
    await press(market, updates, user_id, f"om:a:{ids['baguette']}")
    await press(market, updates, user_id, f"om:a:{ids['baguette']}")
    assert last_answer(bot_api, market).params["text"] == "Added: Baguette (in cart: 2)"
    return ids


async def test_pickup_flow_then_partner_accepts_by_button(market, updates, bot_api):
    ids = await fill_cart(market, updates, bot_api)

    await post(market, updates.command("cart", user_id=CUSTOMER))
    cart_message = last(bot_api, "sendMessage", market, CUSTOMER)
    assert "Baguette × 2 = RUB\u00a0240.00" in cart_message.params["text"]
    await press(market, updates, CUSTOMER, f"oc:inc:{ids['baguette']}")
    assert (
        "Baguette × 3 = RUB\u00a0360.00"
        in last(bot_api, "editMessageText", market, CUSTOMER).params["text"]
    )
    await press(market, updates, CUSTOMER, f"oc:dec:{ids['baguette']}")
    assert (
        "Baguette × 2 = RUB\u00a0240.00"
        in last(bot_api, "editMessageText", market, CUSTOMER).params["text"]
    )

    await press(market, updates, CUSTOMER, "oc:go")
    assert set(buttons(last(bot_api, "sendMessage", market, CUSTOMER))) == {
        "ck:t:pickup",
        "ck:t:delivery",
    }
    await press(market, updates, CUSTOMER, "ck:t:pickup")
    ask_phone = last(bot_api, "sendMessage", market, CUSTOMER)
    assert ask_phone.params["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    await post(market, updates.contact("79990001122", user_id=CUSTOMER, first_name="Anna"))
    summary = last(bot_api, "sendMessage", market, CUSTOMER)
    assert "Total: RUB\u00a0240.00" in summary.params["text"]
    assert await market.table("orders") == []  # nothing is written before confirming

    await press(market, updates, CUSTOMER, "ck:ok")
    [order] = await market.table("orders")
    assert (order["type"], order["status"], order["total"], order["phone"]) == (
        "pickup",
        "pending",
        24000,
        "+79990001122",  # E.164 (core.kit.normalize_phone)
    )
    assert order["customer_id"] == CUSTOMER and order["customer_name"] == "Test"
    placed = last(bot_api, "editMessageText", market, CUSTOMER)
    assert placed.params["text"].startswith(f"Order #{order['id']} placed")
    assert await market.tenant.redis.exists(market.tenant.key("cart", CUSTOMER)) == 0

    # Both partners got the card with the partner's moves from the machine.
    for partner in (PARTNER_A, PARTNER_B):
        card = last(bot_api, "sendMessage", market, partner)
        assert f"New order #{order['id']}" in card.params["text"]
        assert set(buttons(card)) == {
            f"os:{order['id']}:pending:preparing:p",
            f"os:{order['id']}:pending:rejected:p",
        }

    [message_a] = [m for m in await market.table("partner_messages") if m["chat_id"] == PARTNER_A]
    await press(
        market, updates, PARTNER_A, f"os:{order['id']}:pending:preparing:p", message_a["message_id"]
    )
    [order] = await market.table("orders")
    assert order["status"] == "preparing"
    history = await market.table("order_history", "id")
    assert [(h["from_status"], h["to_status"], h["role"], h["actor_id"]) for h in history] == [
        (None, "pending", "customer", CUSTOMER),
        ("pending", "preparing", "partner", PARTNER_A),
    ]
    # Every partner's copy is edited with the new state and the next moves.
    for partner in (PARTNER_A, PARTNER_B):
        edited = last(bot_api, "editMessageText", market, partner)
        assert "Status: being prepared" in edited.params["text"]
        assert set(buttons(edited)) == {f"os:{order['id']}:preparing:ready:p"}
    told = last(bot_api, "sendMessage", market, CUSTOMER)
    assert told.params["text"] == f"Order #{order['id']} (Bakery): being prepared"

    # Partner B's stale button (still "pending") is refused and redrawn.
    await press(market, updates, PARTNER_B, f"os:{order['id']}:pending:rejected:p", 99)
    assert (
        last_answer(bot_api, market).params["text"]
        == f"Order #{order['id']} is already being prepared."
    )
    assert [o["status"] for o in await market.table("orders")] == ["preparing"]


async def test_delivery_flow_with_location_and_typed_phone(market, updates, bot_api):
    ids = await fill_cart(market, updates, bot_api)
    await press(market, updates, CUSTOMER, "oc:go")
    await press(market, updates, CUSTOMER, "ck:t:delivery")
    ask = last(bot_api, "sendMessage", market, CUSTOMER)
    assert ask.params["reply_markup"]["keyboard"][0][0]["request_location"] is True
    await post(market, updates.location(55.7558, 37.6173, user_id=CUSTOMER))
    await post(market, updates.message("12345", user_id=CUSTOMER))  # too short: asked again
    assert (
        last(bot_api, "sendMessage", market, CUSTOMER)
        .params["text"]
        .startswith("That does not look like a phone")
    )
    await post(market, updates.message("+7 (999) 000-11-22", user_id=CUSTOMER))
    summary = last(bot_api, "sendMessage", market, CUSTOMER).params["text"]
    assert "Delivery: RUB\u00a0150.00" in summary and "Total: RUB\u00a0390.00" in summary
    await press(market, updates, CUSTOMER, "ck:ok")
    [order] = await market.table("orders")
    assert (order["type"], order["subtotal"], order["delivery_fee"], order["total"]) == (
        "delivery",
        24000,
        15000,
        39000,
    )
    assert (order["latitude"], order["longitude"], order["phone"]) == (
        55.7558,
        37.6173,
        "+79990001122",
    )
    [line] = await market.table("order_items")
    assert (line["item_id"], line["quantity"], line["unit_price"]) == (ids["baguette"], 2, 12000)


async def test_delivery_address_as_text_and_cart_survives_restart(market, updates, bot_api):
    await fill_cart(market, updates, bot_api)
    await market.h.stop()
    await market.h.start()
    await market.h.wait_state(market.id, "running")
    await post(market, updates.command("cart", user_id=CUSTOMER))
    assert "Baguette × 2" in last(bot_api, "sendMessage", market, CUSTOMER).params["text"]
    await press(market, updates, CUSTOMER, "oc:go")
    await press(market, updates, CUSTOMER, "ck:t:delivery")
    await post(market, updates.message("Tverskaya 1, apt 5", user_id=CUSTOMER))
    await post(market, updates.contact("79990001122", user_id=CUSTOMER))
    await press(market, updates, CUSTOMER, "ck:ok")
    [order] = await market.table("orders")
    assert order["address"] == "Tverskaya 1, apt 5" and order["latitude"] is None


async def test_customer_cancels_from_myorders_but_not_after_acceptance(market, updates, bot_api):
    first = await market.pickup_order()
    second = await market.pickup_order()
    response = await market.set_status(second["id"], {"status": "preparing"})
    assert response.status_code == 200, response.text

    await post(market, updates.command("myorders", user_id=CUSTOMER))
    listing = last(bot_api, "sendMessage", market, CUSTOMER)
    assert (
        f"#{first['id']} · Bakery" in listing.params["text"]
        and "being prepared" in listing.params["text"]
    )
    # Only the pending order offers the customer a cancel button.
    assert set(buttons(listing)) == {f"os:{first['id']}:pending:cancelled:c"}

    await press(market, updates, CUSTOMER, f"os:{first['id']}:pending:cancelled:c")
    assert (
        last_answer(bot_api, market).params["text"]
        == f"Done: order #{first['id']} is now cancelled."
    )
    # Refused: the machine has no customer move out of preparing.
    await press(market, updates, CUSTOMER, f"os:{second['id']}:preparing:cancelled:c")
    refused = last_answer(bot_api, market).params
    assert refused["show_alert"] is True
    assert refused["text"] == (
        f"Not possible: order #{second['id']} cannot go from “being prepared” to “cancelled” now"
    )
    statuses = {o["id"]: o["status"] for o in await market.table("orders")}
    assert statuses == {first["id"]: "cancelled", second["id"]: "preparing"}


async def test_wrong_roles_by_button_change_nothing(market, updates, bot_api):
    order = await market.pickup_order()
    # A customer posing as partner, another customer cancelling, a non-admin posing as admin.
    await press(market, updates, OTHER_CUSTOMER, f"os:{order['id']}:pending:preparing:p")
    assert last_answer(bot_api, market).params["text"] == "This order is not yours to change."
    await press(market, updates, OTHER_CUSTOMER, f"os:{order['id']}:pending:cancelled:c")
    assert last_answer(bot_api, market).params["text"] == "This order is not yours to change."
    await press(market, updates, CUSTOMER, f"os:{order['id']}:pending:preparing:a")
    assert last_answer(bot_api, market).params["text"] == "This order is not yours to change."
    # A partner may not take the customer's move.
    await press(market, updates, PARTNER_A, f"os:{order['id']}:pending:cancelled:p")
    assert last_answer(bot_api, market).params["text"] == (
        f"Not possible: order #{order['id']} cannot go from “waiting for the store” to “cancelled” now"
    )
    assert [o["status"] for o in await market.table("orders")] == ["pending"]
    assert len(await market.table("order_history")) == 1
    # A real admin may.
    await press(market, updates, ADMIN, f"os:{order['id']}:pending:preparing:a")
    assert [o["status"] for o in await market.table("orders")] == ["preparing"]
