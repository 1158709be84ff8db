"""Hostile updates over the webhook: each is handled quietly (answered or ignored, never a crash).

Updates without ``from``, update types and fields the Bot API added later,
callback data no handler can parse, and a NUL character in a name: each is
answered or ignored, counted in ``tenantry_updates_total``, and logs no
traceback. (The hostile inputs over HTTP are tests/test_fuzz_inputs.py's.)
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from _fuzz_inputs_support import start_tenants

# ---------------------------------------------------------------- helpers


def crashes(caplog: pytest.LogCaptureFixture) -> list[Any]:
    """Log records of a crash: errors, or anything carrying a traceback."""
    return [
        r.msg
        for r in caplog.records
        if r.levelname in ("ERROR", "CRITICAL")
        or r.exc_info
        or (isinstance(r.msg, dict) and r.msg.get("exc_info"))
    ]


async def update_outcomes(tenantry: Any, tenant_id: str) -> dict[str, float]:
    """``tenantry_updates_total`` of ``tenant_id`` by outcome, read from ``/metrics``."""
    text = (await tenantry.client.get("/metrics")).text
    pattern = re.compile(
        r'^tenantry_updates_total\{outcome="(\w+)",tenant="' + tenant_id + r'"\} ([0-9.e+]+)$', re.M
    )
    return {outcome: float(value) for outcome, value in pattern.findall(text)}


def grew(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Outcomes whose counter moved, and by how much (the counters live for the whole process)."""
    return {
        outcome: after[outcome] - before.get(outcome, 0.0)
        for outcome in after
        if after[outcome] != before.get(outcome, 0.0)
    }


# ---------------------------------------------------------------- webhook


# aiogram warns once about an update type it does not know yet, and skips it.
@pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")
async def test_updates_without_from_or_of_later_bot_api_types_are_processed_quietly(
    tenantry, updates, caplog
):
    await start_tenants(tenantry)
    for tenant_id in ("filin", "market"):
        before = await update_outcomes(tenantry, tenant_id)
        # Bot API: Message.from is optional (channel posts, anonymous group admins).
        anonymous = updates.message("hello", user_id=4242, chat_id=-100777)
        del anonymous["message"]["from"]
        anonymous_command = updates.command("start", user_id=4242, chat_id=-100777)
        del anonymous_command["message"]["from"]
        later_field = updates.message("hello", user_id=4243)
        later_field["message"]["reaction_summary_v9"] = {"count": 3}
        later_type = updates.message("unused", user_id=4243)
        later_type = {"update_id": later_type["update_id"], "business_story_v9": {"id": 1}}
        for update in (anonymous, anonymous_command, later_field, later_type):
            response = await tenantry.post_update(tenant_id, update)
            assert response.status_code == 200, response.text
        # CallbackQuery.from is required by the Bot API: without it the body is
        # not an Update, and the webhook says so instead of guessing.
        no_sender = updates.callback_query("om:h", user_id=4244)
        del no_sender["callback_query"]["from"]
        response = await tenantry.post_update(tenant_id, no_sender)
        assert response.status_code == 400
        assert response.json()["code"] == "webhook.malformed_update"
        moved = grew(before, await update_outcomes(tenantry, tenant_id))
        assert moved == {"processed": 4.0, "malformed": 1.0}, moved
    assert crashes(caplog) == []


BOOKING_GARBAGE = [
    "garbage",
    "bk:",
    "bkcal:m:zz",
    "bkcal:m:000000",
    "bkcal:m:999912",
    "bkcal:d:99999999",
    "bkt:99999999999999999",
    "bkt:-5",
    "bkx:99999999999999999999",
    "bkx:²",
    "bkr:99999999999999999999:3",
    "bkr:1:99",
    "bka:99999999999999999999:confirmed",
    "bkc:maybe",
    "bkp:99999999999999999999",
]
ORDERS_GARBAGE = [
    "garbage",
    "om:a:99999999999999999999",
    "om:a:²",
    "om:s:\x00",
    "om:c:bread\x00",
    "om:c:" + "9" * 60,
    "oc:inc:99999999999999999999",
    "oc:dec:²",
    "os:99999999999999999999:new:cancelled:c",
    "os:²:new:cancelled:c",
    "os:1:new:cancelled:zz",
    "ck:t:teleport",
]


@pytest.mark.parametrize(
    ("tenant_id", "garbage", "flow"),
    [("filin", BOOKING_GARBAGE, "book"), ("market", ORDERS_GARBAGE, "menu")],
)
async def test_callback_data_no_handler_can_parse_is_answered_not_crashed(
    tenantry, updates, bot_api, caplog, tenant_id, garbage, flow
):
    await start_tenants(tenantry)
    admin = 900000001  # the harness's bot.admins: the admin-only buttons run too
    before = await update_outcomes(tenantry, tenant_id)
    pressed = []
    for data in garbage:
        # Each press in the middle of a flow, so the state-bound handlers see it too.
        assert (
            await tenantry.post_update(tenant_id, updates.command(flow, user_id=admin))
        ).status_code == 200
        press = updates.callback_query(data, user_id=admin)
        response = await tenantry.post_update(tenant_id, press)
        assert response.status_code == 200, (data, response.text)
        pressed.append((data, press["callback_query"]["id"]))
    answered = {c.params.get("callback_query_id") for c in bot_api.calls("answerCallbackQuery")}
    for data, query_id in pressed:
        if data != "garbage":  # no handler claims it; Telegram's spinner times out
            assert query_id in answered, f"{data!r} was not answered"
    moved = grew(before, await update_outcomes(tenantry, tenant_id))
    assert moved == {"processed": 2.0 * len(garbage)}, moved
    assert crashes(caplog) == []


async def test_nul_in_a_name_is_handled_by_the_bot_not_stored_raw(
    tenantry, updates, bot_api, caplog
):
    configs = await start_tenants(tenantry)
    schema = configs["filin"]["storage"]["schema"]
    start = updates.command("start", user_id=4300, first_name="An\x00na")
    assert (await tenantry.post_update("filin", start)).status_code == 200
    rows = await tenantry.sql(f'SELECT first_name FROM "{schema}".users WHERE telegram_id = 4300')
    assert rows == [{"first_name": "Anna"}]

    def buttons(prefix: str) -> list[str]:
        markup = bot_api.calls("sendMessage")[-1].params.get("reply_markup") or {}
        return [
            b["callback_data"]
            for row in markup.get("inline_keyboard", [])
            for b in row
            if b.get("callback_data", "").startswith(prefix)
        ]

    user = 4301
    await tenantry.post_update("filin", updates.command("book", user_id=user))
    await tenantry.post_update(
        "filin", updates.callback_query(buttons("bkcal:d:")[2], user_id=user)
    )
    await tenantry.post_update("filin", updates.callback_query(buttons("bkt:")[0], user_id=user))
    await tenantry.post_update("filin", updates.callback_query(buttons("bkp:")[0], user_id=user))
    response = await tenantry.post_update("filin", updates.message("An\x00na", user_id=user))
    assert response.status_code == 200
    reply = bot_api.calls("sendMessage", chat_id=user)[-1].params["text"]
    assert "name" in reply.lower(), reply  # asked again for a name it can store
    assert await tenantry.sql(f'SELECT id FROM "{schema}".bookings') == []
    assert crashes(caplog) == []
