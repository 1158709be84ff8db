"""The status machine from YAML: expiry job, renamed states on existing rows, settings validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml
from conftest import CUSTOMER, ORDERS_SETTINGS, PARTNER_A

from plugins.orders.hookimpls import register_jobs
from plugins.orders.service import expire_pending


async def test_expiry_job_cancels_stale_pending_orders(market, bot_api):
    [job] = register_jobs()
    assert (job.name, job.cron) == ("orders.expire", "* * * * *")
    stale = await market.pickup_order()
    fresh = await market.pickup_order()
    accepted = await market.pickup_order()
    assert (await market.set_status(accepted["id"], {"status": "preparing"})).status_code == 200
    await market.h.sql(
        f"UPDATE \"{market.schema}\".orders SET created_at = now() - interval '20 minutes' WHERE id = ANY($1::bigint[])",
        [stale["id"], accepted["id"]],
    )
    await market.h.events_delivered(market.tenant.id)
    bot_api.clear()

    assert await expire_pending(market.tenant) == [stale["id"]]
    await market.h.events_delivered(market.tenant.id)
    statuses = {o["id"]: o["status"] for o in await market.table("orders")}
    assert statuses == {
        stale["id"]: "cancelled",
        fresh["id"]: "pending",
        accepted["id"]: "preparing",
    }
    [last] = [h for h in await market.table("order_history", "id") if h["order_id"] == stale["id"]][
        -1:
    ]
    assert (
        last["from_status"],
        last["to_status"],
        last["role"],
        last["actor_id"],
        last["reason"],
    ) == (
        "pending",
        "cancelled",
        "system",
        None,
        "expired",
    )
    told = bot_api.calls("sendMessage", bot_id=market.bot_id, chat_id=CUSTOMER)
    assert [c.params["text"] for c in told] == [
        f"Order #{stale['id']} (Bakery): cancelled\nReason: the store did not accept it in time"
    ]
    [edited] = bot_api.calls("editMessageText", bot_id=market.bot_id, chat_id=PARTNER_A)
    assert "Status: cancelled" in edited.params["text"] and "reply_markup" not in edited.params
    # Running again finds nothing; a later clock expires the fresh one too.
    assert await expire_pending(market.tenant) == []
    later = datetime.now(UTC) + timedelta(minutes=16)
    assert await expire_pending(market.tenant, now=later) == [fresh["id"]]


async def test_expiry_respects_a_machine_without_system_role(tenantry):
    machine = {
        "initial": "pending",
        "transitions": {
            "pending": [
                {"to": "done", "roles": ["partner"]},
                {"to": "cancelled", "roles": ["customer"]},
            ]
        },
    }
    config = tenantry.add_tenant(
        "strict", features={"orders": ORDERS_SETTINGS}, statuses={"orders": machine}
    )
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("strict")
    schema = config["storage"]["schema"]
    [item] = await tenantry.sql(f"SELECT id FROM \"{schema}\".items WHERE sku = 'baguette'")
    from plugins.orders.service import OrderDraft, OrderLine, create_order

    order = await create_order(
        tenant,
        customer_id=CUSTOMER,
        customer_name="A",
        draft=OrderDraft(
            store_id="bakery", type="pickup", lines=[OrderLine(item["id"], 2)], phone="+79990001122"
        ),
        source="webapp",
    )
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await expire_pending(tenant, now=later) == []
    assert [r["status"] for r in await tenantry.sql(f'SELECT status FROM "{schema}".orders')] == [
        "pending"
    ]
    assert order["status"] == "pending"


async def test_renamed_states_rewrite_existing_rows(tenantry):
    legacy = {
        "initial": "new",
        "transitions": {
            "new": [
                {"to": "confirmed", "roles": ["partner", "admin"]},
                {"to": "cancelled", "roles": ["customer", "admin", "system"]},
            ],
            "confirmed": [{"to": "ready", "roles": ["partner", "admin"]}],
            "ready": ["completed"],
        },
    }
    config = tenantry.add_tenant(
        "old", features={"orders": ORDERS_SETTINGS}, statuses={"orders": legacy}
    )
    await tenantry.start()
    schema = config["storage"]["schema"]
    base = "/api/tenants/old/orders"
    [item] = await tenantry.sql(f"SELECT id FROM \"{schema}\".items WHERE sku = 'baguette'")
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "phone": "+79990001122",
        "customer_id": CUSTOMER,
        "items": [{"item_id": item["id"], "quantity": 2}],
    }
    created = [
        (
            await tenantry.client.post(
                f"{base}/orders", json=body, headers=tenantry.api_headers("old")
            )
        ).json()
        for _ in range(2)
    ]
    assert [o["status"] for o in created] == ["new", "new"]
    response = await tenantry.client.post(
        f"{base}/orders/{created[0]['id']}/status",
        json={"status": "confirmed"},
        headers=tenantry.api_headers("old"),
    )
    assert response.status_code == 200, response.text

    # The unified statuses: confirmed -> preparing, new -> pending.
    unified = {
        "initial": "pending",
        "transitions": {
            "pending": [
                {"to": "preparing", "roles": ["partner", "admin"]},
                {"to": "cancelled", "roles": ["customer", "admin", "system"]},
            ],
            "preparing": [{"to": "ready", "roles": ["partner", "admin"]}],
            "ready": ["completed"],
        },
        "renamed": {"confirmed": "preparing", "new": "pending"},
    }
    config["statuses"] = {"orders": unified}
    tenantry.write_tenant("old", yaml.safe_dump(config, sort_keys=False))
    reloaded = await tenantry.client.post(
        "/admin/tenants/old/reload", headers=tenantry.admin_headers()
    )
    assert reloaded.status_code == 200, reloaded.text
    await tenantry.wait_state("old", "running")

    rows = await tenantry.sql(f'SELECT id, status FROM "{schema}".orders ORDER BY id')
    assert [r["status"] for r in rows] == ["preparing", "pending"]
    history = await tenantry.sql(
        f'SELECT from_status, to_status FROM "{schema}".order_history ORDER BY id'
    )
    assert {(h["from_status"], h["to_status"]) for h in history} == {
        (None, "pending"),
        ("pending", "preparing"),
    }
    # The CHECK constraint now refuses the old names.
    constraint = await tenantry.sql(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'orders_status_tenantry_check'"
        " AND connamespace = $1::regnamespace",
        schema,
    )
    assert "'confirmed'" not in constraint[0]["def"] and "'preparing'" in constraint[0]["def"]
    # And the renamed order moves on under the new machine.
    response = await tenantry.client.post(
        f"{base}/orders/{rows[0]['id']}/status",
        json={"status": "ready"},
        headers=tenantry.api_headers("old"),
    )
    assert response.status_code == 200, response.text


async def test_settings_errors_name_the_field(tenantry):
    bad = {
        **ORDERS_SETTINGS,
        "categories": [{"id": "bread", "store": "nowhere", "name": "Bread"}],
        "items": [],
    }
    tenantry.add_tenant("broken", features={"orders": bad})
    tenantry.add_tenant("typo", features={"orders": {"expire_after_minutse": 5}})
    await tenantry.start()
    health = (await tenantry.client.get("/health", headers=tenantry.admin_headers())).json()
    rejected = " ".join(" ".join(issues) for issues in health["rejected"].values())
    assert "category 'bread' names unknown store 'nowhere'" in rejected
    assert "expire_after_minutse" in rejected
