"""The employee and manager flows through the webhook, checked at the Bot API stand-in and in the database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conftest import ADMIN, ANNA, STRANGER, buttons, last_text, press, say


async def test_invite_shift_close_approve_and_correct(crew, updates, bot_api):
    # A manager (bot.admins) adds Anna; she joins by the one-time link.
    await say(crew, updates, ADMIN, "/invite Anna Petrova")
    invite = last_text(bot_api, crew, ADMIN)
    start = re.search(r"inv_[A-Za-z0-9_-]+", invite).group(0)
    assert "Anna Petrova is added" in invite and "t.me/" in invite
    await say(crew, updates, ANNA, f"/start {start}")
    assert last_text(bot_api, crew, ANNA).startswith("Welcome to the team, Anna Petrova!")
    [anna] = await crew.table("employees")
    assert anna["user_id"] == ANNA and anna["role"] == "staff"
    await say(crew, updates, STRANGER, f"/start {start}")
    assert "unknown, used or expired" in last_text(bot_api, crew, STRANGER)

    # Someone who is not staff is refused politely by the core.
    await say(crew, updates, STRANGER, "/shift")
    assert last_text(bot_api, crew, STRANGER).startswith("This command is for staff")
    await say(crew, updates, ANNA, "/pending")
    assert last_text(bot_api, crew, ANNA).startswith("This command is for managers")

    # Clock in, then close with the sales by category.
    await say(crew, updates, ANNA, "/shift")
    opened = bot_api.calls("sendMessage", bot_id=crew.bot_id, chat_id=ANNA)[-1]
    assert opened.params["text"].startswith("Shift #1 is open")
    assert buttons(opened) == {"sh:close:1": "Close the shift"}
    await press(crew, updates, ANNA, "sh:close:1")
    assert last_text(bot_api, crew, ANNA) == "Sales in Bar?"
    await say(crew, updates, ANNA, "twelve hundred")
    assert last_text(bot_api, crew, ANNA).startswith("Please send an amount")
    await say(crew, updates, ANNA, "1 200")
    assert last_text(bot_api, crew, ANNA) == "Sales in Tips?"
    await say(crew, updates, ANNA, "300,00")
    closed = last_text(bot_api, crew, ANNA)
    assert closed.startswith("Shift #1 is closed and sent for approval.")
    assert "Bar: RUB\u00a01,200.00" in closed and "Tips: RUB\u00a0300.00" in closed
    assert "Commission (by sales range, up to 7%): RUB\u00a054.00" in closed
    [shift] = await crew.table("shifts")
    assert (shift["status"], shift["sales_total"], shift["commission"]) == (
        "submitted",
        150000,
        5400,
    )
    assert shift["total"] == shift["base_pay"] + shift["commission"] + shift["bonus_total"]

    # The manager is told and approves with the button; Anna is told.
    notice = bot_api.calls("sendMessage", bot_id=crew.bot_id, chat_id=ADMIN)[-1]
    assert notice.params["text"].startswith("A shift waits for your approval:")
    assert set(buttons(notice)) == {"sm:1:submitted:a", "sm:1:submitted:r", "sx:1"}
    await press(crew, updates, ADMIN, "sm:1:submitted:a")
    assert (
        bot_api.calls("answerCallbackQuery", bot_id=crew.bot_id)[-1].params["text"]
        == "Shift #1: Approved"
    )
    assert last_text(bot_api, crew, ANNA) == "Your shift #1: Approved"
    await press(crew, updates, ADMIN, "sm:1:submitted:a")  # a stale button
    assert (
        "cannot be changed that way now (it is: Approved)"
        in (bot_api.calls("answerCallbackQuery", bot_id=crew.bot_id)[-1].params["text"])
    )

    await say(crew, updates, ANNA, "/myshifts")
    assert "#1" in last_text(bot_api, crew, ANNA) and "Approved" in last_text(bot_api, crew, ANNA)
    await say(crew, updates, ANNA, "/mymonth")
    month = last_text(bot_api, crew, ANNA)
    assert (
        "Sales: RUB\u00a01,500.00" in month
        and "To reach Silver next month: RUB\u00a0-" not in month
    )
    assert "No rank this month." in month

    # A second shift, corrected by the manager in the bot: history keeps who, what and why.
    await say(crew, updates, ANNA, "/shift")
    await say(crew, updates, ANNA, "/shift")
    await say(crew, updates, ANNA, "2000")
    await say(crew, updates, ANNA, "0")
    await press(crew, updates, ADMIN, "sx:2")
    assert last_text(bot_api, crew, ADMIN) == "Sales in Bar?"
    await say(crew, updates, ADMIN, "1000")
    await say(crew, updates, ADMIN, "0")
    assert last_text(bot_api, crew, ADMIN).startswith("Why is it corrected?")
    await say(crew, updates, ADMIN, "typo in the bar total")
    assert last_text(bot_api, crew, ADMIN).startswith("Shift #2 is corrected and recomputed.")
    assert last_text(bot_api, crew, ANNA).startswith("Your shift #2 was corrected by a manager:")
    [correction] = await crew.h.sql(
        f"SELECT * FROM \"{crew.schema}\".shift_history WHERE shift_id = 2 AND reason <> ''"
    )
    assert correction["actor_id"] == ADMIN and correction["reason"] == "typo in the bar total"
    assert '"sales_total": {"to": 100000, "from": 200000}' in correction["changes"]

    await say(crew, updates, ADMIN, "/report")
    report = last_text(bot_api, crew, ADMIN)
    assert "Anna Petrova: 1 shifts" in report and "Team: 1 shifts" in report

    # A shift left open is reminded once, to the employee and the managers.
    await say(crew, updates, ANNA, "/shift")
    from plugins.shifts.service.ranks import remind_open_shifts

    later = datetime.now(UTC) + timedelta(hours=15)
    assert await remind_open_shifts(crew.tenant, now=later) == 1
    assert await remind_open_shifts(crew.tenant, now=later) == 0
    assert "Forgot to close it?" in last_text(bot_api, crew, ANNA)
    assert "Anna Petrova's shift #3 has been open" in last_text(bot_api, crew, ADMIN)
