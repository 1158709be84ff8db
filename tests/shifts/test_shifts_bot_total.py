"""The bot on a tenant without categories: one sales total, the card's lines, /pending with
Reject, /mymonth with a rank and the distance to the next, /report of a given month."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import ADMIN, ANNA, add_crew, buttons, last_text, press, say

SOLO = {
    "commission": {
        "mode": "flat",
        "rates": [{"from": 0, "to": 100000, "percent": 2}, {"from": 100000, "percent": 4}],
    },
    "ranks": [
        {"id": "silver", "name": "Silver", "threshold": 100000},
        {"id": "gold", "name": "Gold", "threshold": 500000},
    ],
    "bonuses": [{"id": "shift", "name": "Shift bonus", "amount": 2500}],
}


async def test_one_total_reject_month_and_report(tenantry, updates, bot_api):
    solo = await add_crew(tenantry, "solo", SOLO, start=True)
    anna = await solo.employee("Anna", ANNA)

    await say(solo, updates, ANNA, "/shift")
    assert last_text(bot_api, solo, ANNA).startswith("Shift #1 is open")
    await say(solo, updates, ANNA, "/shift")
    assert last_text(bot_api, solo, ANNA).startswith("Send the shift's sales total")
    await say(solo, updates, ANNA, "1 500")
    card = last_text(bot_api, solo, ANNA).split("\n")
    assert card[0] == "Shift #1 is closed and sent for approval."
    # Flat: 150000 is in [100000, ∞) at 4 % = 6000; the unconditional bonus 2500; no base pay.
    assert card[3:] == [
        "Sales: RUB\u00a01,500.00",
        "Commission (4% of the sales): RUB\u00a060.00",
        "Bonus Shift bonus: RUB\u00a025.00",
        "Total: RUB\u00a085.00",
        "Status: Waiting for approval",
    ]

    await say(solo, updates, ADMIN, "/pending")
    waiting = bot_api.calls("sendMessage", bot_id=solo.bot_id, chat_id=ADMIN)[-1]
    assert "Total: RUB\u00a085.00" in waiting.params["text"]
    assert set(buttons(waiting)) == {"sm:1:submitted:a", "sm:1:submitted:r", "sx:1"}
    await press(solo, updates, ADMIN, "sm:1:submitted:r")
    assert last_text(bot_api, solo, ANNA) == "Your shift #1: Rejected"
    [shift] = await solo.table("shifts")
    assert shift["status"] == "rejected"
    history = await solo.table("shift_history", "id")
    assert (history[-1]["from_status"], history[-1]["to_status"], history[-1]["actor_id"]) == (
        "submitted",
        "rejected",
        ADMIN,
    )
    await say(solo, updates, ADMIN, "/pending")
    assert last_text(bot_api, solo, ADMIN) == "No shifts are waiting for approval."
    await solo.ok("POST", "/shifts/1/status", json={"status": "approved"})

    month = datetime.now(UTC).date().replace(day=1)
    await solo.h.sql(
        f'INSERT INTO "{solo.schema}".employee_ranks (employee_id, month, rank) VALUES ($1, $2, $3)',
        anna["id"],
        month,
        "silver",
    )
    await say(solo, updates, ANNA, "/mymonth")
    assert last_text(bot_api, solo, ANNA).split("\n")[1:] == [
        "Sales: RUB\u00a01,500.00",
        "Commission: RUB\u00a060.00",
        "Bonuses: RUB\u00a025.00",
        "Total: RUB\u00a085.00",
        "Rank this month: Silver",
        # gold needs 500000 of approved sales; 150000 are in.
        "To reach Gold next month: RUB\u00a03,500.00 more in approved sales.",
    ]
    assert last_text(bot_api, solo, ANNA).startswith(f"{month:%Y-%m} so far: 1 shifts")

    await say(solo, updates, ADMIN, f"/report {month:%Y-%m}")
    report = last_text(bot_api, solo, ADMIN).split("\n")
    assert report[0] == f"Report for {month:%Y-%m} (approved shifts):"
    assert report[1].startswith("Anna: 1 shifts") and report[1].endswith("total RUB\u00a085.00")
    await say(solo, updates, ADMIN, "/report 2026-10")
    assert last_text(bot_api, solo, ADMIN) == "No approved shifts in 2026-10."
    await say(solo, updates, ADMIN, "/report 2026-13")
    assert last_text(bot_api, solo, ADMIN).startswith("Write the month as YYYY-MM")
