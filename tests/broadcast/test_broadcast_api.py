"""Campaigns over HTTP: create, schedule, pause, resume, cancel, 5xx retries, results, bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from _broadcast_support import Shop, sends


async def test_pause_resume_and_cancel(tenantry, bot_api):
    shop = Shop(
        tenantry, tenantry.add_tenant("slow", features={"broadcast": {"rate_per_second": 10}})
    )
    await tenantry.start()
    await shop.add_subscribers(range(4000, 4040))
    campaign = await shop.create(content={"kind": "text", "text": "Sale!"})
    await shop.wait_sent(campaign["id"], 5)

    paused = await tenantry.client.post(
        shop.url(f"/campaigns/{campaign['id']}/pause"), headers=shop.headers
    )
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    # Sends already in flight settle; then nothing more goes out while paused.
    await asyncio.sleep(0.5)
    settled = len(sends(bot_api, shop.bot_id))
    await asyncio.sleep(0.7)
    assert len(sends(bot_api, shop.bot_id)) == settled < 40

    again = await tenantry.client.post(
        shop.url(f"/campaigns/{campaign['id']}/pause"), headers=shop.headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "broadcast.not_allowed"
    assert again.json()["current"] == "paused"

    resumed = await tenantry.client.post(
        shop.url(f"/campaigns/{campaign['id']}/resume"), headers=shop.headers
    )
    assert resumed.json()["status"] == "running"
    await shop.wait_sent(campaign["id"], settled + 3)
    cancelled = await tenantry.client.post(
        shop.url(f"/campaigns/{campaign['id']}/cancel"), headers=shop.headers
    )
    assert cancelled.json()["status"] == "cancelled"
    await asyncio.sleep(0.3)  # sends in flight at the cancel settle
    view = await shop.campaign(campaign["id"])
    counts = view["counts"]
    assert counts["cancelled"] > 0
    assert counts["sent"] + counts["cancelled"] == 40
    assert counts["sent"] == len(sends(bot_api, shop.bot_id))
    chats = [c.params["chat_id"] for c in sends(bot_api, shop.bot_id)]
    assert len(chats) == len(set(chats))

    rows = await tenantry.client.get(
        shop.url(f"/campaigns/{campaign['id']}/deliveries?status=sent&limit=1000"),
        headers=shop.headers,
    )
    assert sorted(r["chat_id"] for r in rows.json()) == sorted(chats)
    assert all(r["message_id"] for r in rows.json())


async def test_schedule_in_the_tenant_time_zone(tenantry, bot_api):
    config = tenantry.add_tenant(
        "moscow", timezone="Europe/Moscow", features={"broadcast": {"rate_per_second": 30}}
    )
    await tenantry.start()
    shop = Shop(tenantry, config)
    await shop.add_subscribers(range(4100, 4103))
    local = datetime.now(UTC).astimezone(tenantry.runtime.registry.get("moscow").tz)
    start = (local + timedelta(seconds=2)).replace(tzinfo=None, microsecond=0)
    campaign = await shop.create(send_at=start.isoformat())
    assert campaign["status"] == "scheduled"
    assert datetime.fromisoformat(campaign["scheduled_at"]) == start.replace(
        tzinfo=local.tzinfo
    ).astimezone(UTC)
    assert sends(bot_api, shop.bot_id) == []
    view = await shop.wait_status(campaign["id"], "done", timeout=15)
    assert view["counts"]["sent"] == 3
    first = min(c.at for c in sends(bot_api, shop.bot_id))
    assert first >= datetime.fromisoformat(campaign["scheduled_at"]).timestamp() - 0.05


async def test_server_errors_are_retried_and_bad_requests_fail(shop: Shop, bot_api):
    await shop.add_subscribers([4200, 4201, 4202])
    bot_api.fail_next("sendPhoto", error_code=500, chat_id=4200)
    bot_api.fail_next(
        "sendPhoto", error_code=400, description="Bad Request: wrong file identifier", chat_id=4201
    )
    campaign = await shop.create(
        content={
            "kind": "photo",
            "media": "https://example.com/menu.jpg",
            "caption": "<b>Menu</b>",
            "parse_mode": "HTML",
        }
    )
    view = await shop.wait_status(campaign["id"], "done")
    assert (view["counts"]["sent"], view["counts"]["failed"]) == (2, 1)
    rows = {r["chat_id"]: r for r in await shop.deliveries(campaign["id"])}
    assert (rows[4200]["status"], rows[4200]["attempts"]) == ("sent", 2)
    assert (rows[4201]["status"], rows[4201]["error_code"]) == ("failed", 400)
    assert "wrong file identifier" in rows[4201]["error"]
    photo = sends(bot_api, shop.bot_id, "sendPhoto")[0]
    assert (photo.params["photo"], photo.params["caption"], photo.params["parse_mode"]) == (
        "https://example.com/menu.jpg",
        "<b>Menu</b>",
        "HTML",
    )


async def test_bad_input_is_refused_with_a_reason(shop: Shop):
    client, headers = shop.h.client, shop.headers
    await shop.add_subscribers([4300])
    cases = [
        ({"content": {"kind": "text"}}, 400, "broadcast.bad_content"),
        ({"content": {"kind": "photo"}}, 400, "broadcast.bad_content"),
        ({"content": {"kind": "text", "text": "x" * 4097}}, 400, "request.invalid"),
        (
            {
                "content": {"kind": "text", "text": "hi"},
                "audience": {"kind": "segment", "segment": "x.y"},
            },
            400,
            "broadcast.unknown_segment",
        ),
        (
            {
                "content": {"kind": "text", "text": "hi"},
                "audience": {"kind": "language", "language": "de"},
            },
            400,
            "broadcast.empty_audience",
        ),
        ({"content": {"kind": "text", "text": "hi"}, "extra": 1}, 400, "request.invalid"),
    ]
    for body, status, code in cases:
        response = await client.post(shop.url("/campaigns/"), json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), (
            body,
            response.text,
        )
    assert await shop.sql("SELECT id FROM {s}.broadcast_campaigns") == []

    missing = await client.get(shop.url("/campaigns/999"), headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "broadcast.not_found")
    nobody = await client.post(
        shop.url("/campaigns/"), json={"content": {"kind": "text", "text": "x"}}
    )
    assert nobody.status_code == 401
    status = await client.get(shop.url("/campaigns/1/deliveries?status=nope"), headers=headers)
    assert (status.status_code, status.json()["code"]) == (400, "broadcast.unknown_status")
