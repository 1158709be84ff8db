"""Admins in the bot (/bookings, /today, /block, status buttons) and the settings' validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from _booking_support import (
    ADMIN,
    BotUser,
    add_restaurant,
    at,
    booking_body,
    buttons,
    future_day,
    restaurant,
    schema,
)

from core.config.loader import load_tenant_file, load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


async def test_admin_lists_a_day_changes_status_and_blocks(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, tables=[{"id": "solo", "seats": 4}])
    await tenantry.start()
    day = future_day()
    created = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(at(day, "19:00"), party_size=3),
        headers=tenantry.api_headers("filin"),
    )
    booking_id = created.json()["id"]
    admin = BotUser(tenantry, updates, bot_api, "filin", config, user_id=ADMIN)
    stranger = BotUser(tenantry, updates, bot_api, "filin", config, user_id=31337)

    refused = await stranger.command("bookings", day.isoformat())
    assert refused.params["text"] == "This command is for admins."
    usage = await admin.command("bookings", "tomorrow")
    assert usage.params["text"].startswith("Usage: /bookings")
    item = await admin.command("bookings", day.isoformat())
    assert item.params["text"].startswith(
        f"#{booking_id} · {day:%d.%m.%Y} 19:00 · Guests: 3 (solo)"
    )
    assert [b["text"] for b in buttons(item)] == ["seated", "cancelled", "no-show"]

    # a stranger pressing an admin button changes nothing
    await stranger.tap(item, "seated")
    assert (await tenantry.sql(f'SELECT status FROM "{schema(config)}".bookings'))[0][
        "status"
    ] == "confirmed"
    after = await admin.tap(item, "seated")
    assert after.params["text"].endswith("· seated")
    assert [b["text"] for b in buttons(after)] == ["completed"]
    # pressing the old button again is refused by the machine, in the tenant's words
    await admin.tap(item, "no-show")
    answer = bot_api.calls("answerCallbackQuery", bot_id=admin.bot_id)[-1]
    assert answer.params["text"] == (
        f"This cannot be done now: booking #{booking_id} cannot go from “seated” to “no-show”"
    )

    conflict = await admin.command("block", f"{day.isoformat()} 18:00-20:00 solo")
    assert conflict.params["text"] == f"Cannot block: bookings #{booking_id} hold that time."
    blocked = await admin.command("block", f"{day.isoformat()} 12:00-14:00 * kitchen repairs")
    assert blocked.params["text"].startswith(
        f"Blocked {day:%d.%m.%Y} 12:00-14:00 for the whole place"
    )
    [row] = await tenantry.sql(f'SELECT reason, created_by FROM "{schema(config)}".blocked_slots')
    assert row == {"reason": "kitchen repairs", "created_by": f"telegram:{ADMIN}"}
    taken = await tenantry.client.post(
        "/api/tenants/filin/booking/bookings",
        json=booking_body(at(day, "12:00")),
        headers=tenantry.api_headers("filin"),
    )
    assert taken.status_code == 409
    empty = await admin.command("today")
    assert empty.params["text"].startswith("No bookings on")


async def test_status_settings_must_name_machine_states(tenantry):
    add_restaurant(tenantry, confirmed_status="accepted")
    await tenantry.start()
    state = await tenantry.wait_state("filin", "failed")
    assert (
        "features.booking.confirmed_status: 'accepted' is not a booking status" in state["detail"]
    )


def test_example_tenants_enable_booking():
    pm = build_plugin_manager(entry_points=False)
    filin = load_tenant_file(ROOT / "tenants" / "filin.yaml", pm)
    glow = load_tenant_file(ROOT / "tenants" / "glow.yaml", pm)
    assert filin.settings["booking"].kind == "tables" and filin.config.timezone == "Europe/Moscow"
    assert glow.settings["booking"].kind == "services" and glow.settings["booking"].services
    assert filin.machines["booking"].initial == "pending"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            restaurant(tables=[{"id": "t1", "seats": 2, "combinable_with": ["t9"]}]),
            "combinable with unknown table 't9'",
        ),
        (restaurant(opening_hours={"monday": "10:00-20:00"}), "unknown weekday 'monday'"),
        (restaurant(opening_hours={"mon": "10-20"}), "opening hours must look like"),
        (restaurant(tables=[]), "needs at least one entry in tables"),
        (restaurant(slot_step_minutes=1), "slot_step_minutes"),
        (restaurant(tabels=[]), "tabels"),
        (
            {
                "kind": "services",
                "staff": [{"id": "a", "name": "A"}],
                "services": [{"id": "s", "name": "S", "duration_minutes": 30, "staff": ["b"]}],
            },
            "names unknown staff 'b'",
        ),
    ],
)
def test_settings_errors_name_the_field(block, message):
    import yaml

    text = yaml.safe_dump(
        {"id": "cafe", "bot": {"token": "123:abc"}, "features": {"booking": block}}, sort_keys=False
    )
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(text, "cafe.yaml", build_plugin_manager(entry_points=False))
    rendered = " ".join(str(issue) for issue in caught.value.issues)
    assert message in rendered and "features.booking" in rendered
