"""A partner's reject button asks why; the reason reaches the history and the customer (webhook-driven)."""

from __future__ import annotations

from conftest import ADMIN, CUSTOMER, PARTNER_A
from test_orders_bot import last, last_answer, post, press


async def _history(market, order_id: int) -> list[tuple]:
    rows = await market.table("order_history", "id")
    return [(h["to_status"], h["role"], h["actor_id"], h["reason"]) for h in rows
            if h["order_id"] == order_id]  # fmt: skip


async def test_a_partner_rejects_with_a_reason_the_customer_is_told(market, updates, bot_api):
    order = await market.pickup_order()
    await press(market, updates, PARTNER_A, f"os:{order['id']}:pending:rejected:p")
    ask = last(bot_api, "sendMessage", market, PARTNER_A)
    assert ask.params["text"].startswith(
        f"Order #{order['id']} will be rejected by the store. Why?"
    )
    assert "text" not in last_answer(bot_api, market).params  # the press is answered silently
    # Nothing moved yet: the reason comes first.
    assert [o["status"] for o in await market.table("orders")] == ["pending"]

    await post(market, updates.message("Out of baguettes today", user_id=PARTNER_A))
    [row] = await market.table("orders")
    assert row["status"] == "rejected"
    assert (await _history(market, order["id"]))[-1] == (
        "rejected", "partner", PARTNER_A, "Out of baguettes today",
    )  # fmt: skip
    assert last(bot_api, "sendMessage", market, PARTNER_A).params["text"] == (
        f"Done: order #{order['id']} is now rejected by the store."
    )
    told = last(bot_api, "sendMessage", market, CUSTOMER).params["text"]
    assert "rejected by the store" in told and "Reason: Out of baguettes today" in told

    # The state is gone: the partner's next message is not taken as a reason for anything.
    before = len(bot_api.calls("sendMessage", bot_id=market.bot_id))
    await post(market, updates.message("thanks", user_id=PARTNER_A))
    assert len(await _history(market, order["id"])) == 2
    assert len(bot_api.calls("sendMessage", bot_id=market.bot_id)) == before


async def test_skip_moves_without_a_reason_and_cancel_keeps_the_order(market, updates, bot_api):
    skipped, kept = await market.pickup_order(), await market.pickup_order()
    await press(market, updates, ADMIN, f"os:{skipped['id']}:pending:rejected:a")
    await post(market, updates.command("skip", user_id=ADMIN))
    assert (await _history(market, skipped["id"]))[-1] == ("rejected", "admin", ADMIN, "")
    told = last(bot_api, "sendMessage", market, CUSTOMER).params["text"]
    assert "rejected by the store" in told and "Reason:" not in told

    await press(market, updates, PARTNER_A, f"os:{kept['id']}:pending:rejected:p")
    await post(market, updates.command("cancel", user_id=PARTNER_A))
    assert last(bot_api, "sendMessage", market, PARTNER_A).params["text"] == (
        f"Nothing changed: order #{kept['id']} is still waiting for the store."
    )
    await post(market, updates.message("too late anyway", user_id=PARTNER_A))
    statuses = {o["id"]: o["status"] for o in await market.table("orders")}
    assert statuses == {skipped["id"]: "rejected", kept["id"]: "pending"}


async def test_a_reason_for_an_order_that_moved_meanwhile_changes_nothing(market, updates, bot_api):
    order = await market.pickup_order()
    await press(market, updates, PARTNER_A, f"os:{order['id']}:pending:rejected:p")
    # Another partner's panel accepts it while the reason is being typed.
    response = await market.set_status(order["id"], {"status": "preparing"})
    assert response.status_code == 200, response.text
    await post(market, updates.message("no flour", user_id=PARTNER_A))
    assert [o["status"] for o in await market.table("orders")] == ["preparing"]
    assert last(bot_api, "sendMessage", market, PARTNER_A).params["text"] == (
        f"Order #{order['id']} is already being prepared."
    )
    assert [h[0] for h in await _history(market, order["id"])] == ["pending", "preparing"]


async def test_moves_that_need_no_reason_or_are_refused_are_not_asked_about(
    market, updates, bot_api
):
    order = await market.pickup_order()
    asked = len(bot_api.calls("sendMessage", bot_id=market.bot_id, chat_id=PARTNER_A))
    # Not a partner's move in the machine: refused at once, as before.
    await press(market, updates, PARTNER_A, f"os:{order['id']}:pending:cancelled:p")
    assert last_answer(bot_api, market).params["show_alert"] is True
    # Accepting is not a cancelled state: it is taken at once.
    await press(market, updates, PARTNER_A, f"os:{order['id']}:pending:preparing:p")
    assert [o["status"] for o in await market.table("orders")] == ["preparing"]
    # A stale reject button: refused and redrawn, not asked about.
    await press(market, updates, PARTNER_A, f"os:{order['id']}:pending:rejected:p")
    assert last_answer(bot_api, market).params["text"] == (
        f"Order #{order['id']} is already being prepared."
    )
    prompts = [
        c for c in bot_api.calls("sendMessage", bot_id=market.bot_id, chat_id=PARTNER_A)[asked:]
        if "Why?" in c.params["text"]
    ]  # fmt: skip
    assert prompts == []
