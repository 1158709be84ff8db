"""Runtime services: Bot API outages, status machines in SQL, migrations, auth guards, jobs, polling."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
import yaml

from core.storage.migrations import Migration, MigrationError, apply_migrations
from core.testing.updates import webapp_init_data


def bot_id(config: dict) -> int:
    return int(config["bot"]["token"].split(":")[0])


async def test_bot_api_unreachable_at_start_keeps_serving_and_recovers(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin")
    glow = tenantry.add_tenant("glow")
    bot_api.set_unavailable(True)
    await tenantry.start()
    state = await tenantry.wait_state("filin", "retrying")
    assert "Bot API registration failed" in state["detail"]
    await tenantry.wait_state("glow", "retrying")

    # The webhook still accepts and processes updates (the reply fails and is logged).
    response = await tenantry.post_update("filin", updates.command("start", user_id=8))
    assert response.status_code == 200
    schema = filin["storage"]["schema"]
    assert await tenantry.sql(f'SELECT telegram_id FROM "{schema}".users') == [{"telegram_id": 8}]
    assert (await tenantry.client.get("/health")).status_code == 200

    bot_api.set_unavailable(False)
    await tenantry.wait_state("filin", "running", timeout=15)
    [registered] = await bot_api.wait_for("setWebhook", bot_id=bot_id(filin))
    assert registered.params["secret_token"] == tenantry.secret("filin")
    await tenantry.wait_state("glow", "running", timeout=15)
    await tenantry.post_update("glow", updates.command("start", user_id=9))
    assert len(await bot_api.wait_for("sendMessage", bot_id=bot_id(glow))) == 1


async def test_one_tenant_failing_does_not_touch_another(tenantry, updates, bot_api):
    glow = tenantry.add_tenant("glow")
    broken = tenantry.tenant_config("filin")
    tenantry.track_storage(broken["storage"]["schema"], broken["storage"]["redis_prefix"])
    # A schema name taken by a non-schema object makes migration fail for this tenant only.
    await tenantry.sql(f'CREATE SCHEMA IF NOT EXISTS "{broken["storage"]["schema"]}"')
    await tenantry.sql(f'CREATE TABLE "{broken["storage"]["schema"]}".users (x int)')
    tenantry.write_tenant("filin", yaml.safe_dump(broken))
    await tenantry.start()
    failed = await tenantry.wait_state("filin", "failed")
    assert "users" in failed["detail"]
    assert (
        await tenantry.post_update("filin", updates.command("start", user_id=1), secret="x")
    ).status_code in (401, 503)
    assert (
        await tenantry.post_update("glow", updates.command("start", user_id=1))
    ).status_code == 200
    assert len(await bot_api.wait_for("sendMessage", bot_id=bot_id(glow))) == 1


async def test_status_check_constraint_and_rename_follow_the_yaml(tenantry, sample):
    filin = tenantry.add_tenant("filin", features={"sample": {}})
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    headers = tenantry.api_headers("filin")
    base = "/api/tenants/filin/sample/tickets"
    created = (await tenantry.client.post(f"{base}/", json={"title": "a"}, headers=headers)).json()
    assert created["status"] == "open"
    moved = await tenantry.client.post(
        f"{base}/{created['id']}/status", json={"status": "done"}, headers=headers
    )
    assert moved.status_code == 201, moved.text
    illegal = await tenantry.client.post(
        f"{base}/{created['id']}/status", json={"status": "open"}, headers=headers
    )
    assert illegal.status_code == 409
    assert illegal.json()["current"] == "done" and illegal.json()["allowed"] == ["closed"]

    schema = filin["storage"]["schema"]
    with pytest.raises(asyncpg.CheckViolationError):
        await tenantry.sql(f"UPDATE \"{schema}\".tickets SET status = 'bogus'")

    # Rename done -> resolved in YAML: rows and history are migrated, the CHECK follows.
    statuses = {
        "tickets": {
            "initial": "open",
            "transitions": {
                "open": [{"to": "resolved", "roles": ["admin"]}, "closed"],
                "resolved": ["closed"],
            },
            "renamed": {"done": "resolved"},
        }
    }
    tenantry.write_tenant("filin", yaml.safe_dump(dict(filin, statuses=statuses)))
    reloaded = await tenantry.client.post(
        "/admin/tenants/filin/reload", headers=tenantry.admin_headers()
    )
    assert reloaded.status_code == 200, reloaded.text
    assert await tenantry.sql(f'SELECT status FROM "{schema}".tickets') == [{"status": "resolved"}]
    assert await tenantry.sql(f'SELECT from_status, to_status FROM "{schema}".ticket_history') == [
        {"from_status": "open", "to_status": "resolved"}
    ]
    with pytest.raises(asyncpg.CheckViolationError):
        await tenantry.sql(f"UPDATE \"{schema}\".tickets SET status = 'done'")

    # Dropping a state that rows still hold is refused and the old config keeps running.
    narrower = {"tickets": {"initial": "open", "transitions": {"open": ["closed"]}}}
    tenantry.write_tenant("filin", yaml.safe_dump(dict(filin, statuses=narrower)))
    refused = await tenantry.client.post(
        "/admin/tenants/filin/reload", headers=tenantry.admin_headers()
    )
    assert refused.status_code == 422
    assert "check constraint" in refused.json()["errors"][0]
    state = await tenantry.wait_state("filin", "running")
    assert state["detail"].startswith("reload failed")
    assert await tenantry.sql(f'SELECT status FROM "{schema}".tickets') == [{"status": "resolved"}]
    listing = await tenantry.client.get(f"{base}/", headers=headers)
    assert listing.json()["tickets"][0]["status"] == "resolved"


async def test_migration_checksum_and_advisory_lock(tenantry_database_url):
    schema = f"mig_{int(time.time() * 1000) % 10**9}"
    first = [Migration("demo", 1, "0001_a.sql", "CREATE TABLE a (id int)")]
    conns = [await asyncpg.connect(tenantry_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c, schema, first) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, 1], "exactly one runtime applies it"
        changed = [Migration("demo", 1, "0001_a.sql", "CREATE TABLE a (id bigint)")]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conns[0], schema, changed)
        failing = [
            *first,
            Migration("demo", 2, "0002_b.sql", "CREATE TABLE b (id int); SELECT 1/0"),
        ]
        with pytest.raises(MigrationError, match=r"0002_b\.sql failed"):
            await apply_migrations(conns[0], schema, failing)
        # Nothing of the failed migration is left behind.
        assert await conns[0].fetchval("SELECT to_regclass($1)", f"{schema}.b") is None
        rows = await conns[0].fetch(f'SELECT plugin, version FROM "{schema}".tenantry_migrations')
        assert [tuple(r) for r in rows] == [("demo", 1)]
    finally:
        await conns[0].execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for conn in conns:
            await conn.close()


async def test_api_keys_and_webapp_init_data(tenantry, sample):
    filin = tenantry.add_tenant("filin", features={"sample": {}}, webapp={"max_age_seconds": 600})
    tenantry.add_tenant("glow", features={"sample": {}})
    tenantry.add_tenant("plain")
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    url = "/api/tenants/filin/sample/tickets/"
    client = tenantry.client

    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers={"X-API-Key": "wrong"})).status_code == 401
    # Another tenant's key never opens this tenant.
    assert (await client.get(url, headers=tenantry.api_headers("glow"))).status_code == 401
    ok = await client.get(url, headers={"Authorization": f"Bearer {tenantry.api_key('filin')}"})
    assert ok.status_code == 200
    assert ok.json()["caller"]["role"] == "admin"

    user = {"id": 4242, "first_name": "Ann", "language_code": "en"}
    token = filin["bot"]["token"]
    valid = await client.get(url, headers={"X-Telegram-Init-Data": webapp_init_data(token, user)})
    assert valid.status_code == 200
    assert valid.json()["caller"]["user_id"] == 4242
    assert valid.json()["caller"]["role"] == "customer"
    forged = webapp_init_data(token, user).replace("4242", "4243")
    assert (await client.get(url, headers={"X-Telegram-Init-Data": forged})).status_code == 401
    other_bot = webapp_init_data("999:other", user)
    assert (await client.get(url, headers={"X-Telegram-Init-Data": other_bot})).status_code == 401
    expired = webapp_init_data(token, user, auth_date=int(time.time()) - 3600)
    response = await client.get(url, headers={"X-Telegram-Init-Data": expired})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]

    # Unknown tenants and tenants without the plugin have no such route.
    assert (await client.get("/api/tenants/nobody/sample/tickets/")).status_code == 404
    plain = await client.get(
        "/api/tenants/plain/sample/tickets/", headers=tenantry.api_headers("plain")
    )
    assert plain.status_code == 404


async def test_events_reach_the_tenants_plugins_only(tenantry, sample):
    tenantry.add_tenant("filin", features={"sample": {}})
    tenantry.add_tenant("glow", features={"sample": {}})
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    response = await tenantry.client.post(
        "/api/tenants/filin/sample/tickets/",
        json={"title": "x"},
        headers=tenantry.api_headers("filin"),
    )
    assert response.status_code == 201
    assert sample.EVENTS == [
        ("filin", "sample.created", {"id": response.json()["id"], "title": "x"})
    ]
    assert sorted(sample.STARTED) == ["filin", "glow"]


async def test_slow_subscribers_do_not_delay_the_publisher_and_keep_order(tenantry, sample):
    import httpx

    tenantry.add_tenant("filin", features={"sample": {}})
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    url = f"{tenantry.url}/api/tenants/filin/sample/tickets/"
    async with httpx.AsyncClient(
        headers=tenantry.api_headers("filin")
    ) as plain:  # no settling hook
        started = time.monotonic()
        first = await plain.post(url, json={"title": "slow"})
        second = await plain.post(url, json={"title": "quick"})
        elapsed = time.monotonic() - started
    assert first.status_code == second.status_code == 201
    assert elapsed < 0.8, "the API waited for the 1 s subscriber"
    assert sample.EVENTS == []
    await tenantry.events_delivered("filin")
    assert [payload["title"] for _, _, payload in sample.EVENTS] == ["slow", "quick"]


async def test_removing_a_tenant_delivers_its_queued_events_first(tenantry, sample):
    import httpx

    tenantry.add_tenant("filin", features={"sample": {}})
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    async with httpx.AsyncClient(headers=tenantry.api_headers("filin")) as plain:
        created = await plain.post(
            f"{tenantry.url}/api/tenants/filin/sample/tickets/", json={"title": "slow"}
        )
    assert created.status_code == 201
    removed = await tenantry.client.delete("/admin/tenants/filin", headers=tenantry.admin_headers())
    assert removed.status_code == 200
    assert [payload["title"] for _, _, payload in sample.EVENTS] == ["slow"]
    assert sample.STOPPED == ["filin"]


async def test_jobs_run_once_per_key_and_survive_in_redis(tenantry, sample):
    tenantry.add_tenant("filin", features={"sample": {}})
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    tenant = tenantry.runtime.registry.get("filin")
    first = await tenant.enqueue("sample.record", key="once", note="a")
    second = await tenant.enqueue("sample.record", key="once", note="b")
    assert (first, second) == (True, False)
    for _ in range(100):
        if sample.JOB_RUNS:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert sample.JOB_RUNS == [("filin", {"note": "a"})]


async def test_polling_tenant_gets_updates_from_getupdates(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin", bot={"mode": "polling"}, texts={"welcome": "polled"})
    await tenantry.start(watch=False)
    bot_api.enqueue_update(bot_id(filin), updates.command("start", user_id=31))
    [reply] = await bot_api.wait_for("sendMessage", bot_id=bot_id(filin), timeout=10)
    assert reply.params["text"] == "polled"
    assert bot_api.calls("deleteWebhook", bot_id=bot_id(filin))
