"""Thousands of tenants per runtime: bots built at their first update and dropped when idle,
schemas checked in one query."""

from __future__ import annotations

import asyncio
import time

from core.testing.updates import UpdateFactory

# The same address at every start of a test: a restart is then the same registration.
PUBLIC_URL = "https://bots.example.com"


def _bot_id(config) -> int:
    return int(config["bot"]["token"].split(":")[0])


async def _registered(tenantry, tenant_id: str) -> None:
    tenant = tenantry.runtime.registry.get(tenant_id)
    key = tenant.key("bot-registration", tenant.config.bot.bot_id, "source")
    for _ in range(100):
        if await tenantry.runtime.redis.exists(key):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tenant_id}'s registration was not remembered")


async def _health(tenantry) -> dict:
    return (await tenantry.client.get("/health", headers=tenantry.admin_headers())).json()


async def test_a_webhook_bot_is_built_at_its_first_update_and_dropped_when_idle(tenantry, bot_api):
    config = tenantry.add_tenant("filin", texts={"welcome": "lazy hello"})
    updates = UpdateFactory(bot_id=_bot_id(config))
    await tenantry.start(public_url=PUBLIC_URL)
    # First start: the bot was never registered, so it is built and registered in the
    # background, then dropped (no update came).
    await _registered(tenantry, "filin")
    first = tenantry.runtime.registry.get("filin")
    for _ in range(40):
        if first.dispatcher is None:
            break
        await asyncio.sleep(0.05)
    assert first.dispatcher is None
    assert len(bot_api.calls("setWebhook", bot_id=_bot_id(config))) == 1
    await tenantry.stop()

    await tenantry.start(public_url=PUBLIC_URL, tenants_idle_seconds=0.4)
    tenant = tenantry.runtime.registry.get("filin")
    assert tenant.state == "running"
    assert tenant.dispatcher is None, "registered as this very file: nothing to build at start"
    health = await _health(tenantry)
    assert (health["loaded"], health["idle"]) == (0, 1)
    assert [t["loaded"] for t in health["tenants"]] == [False]

    response = await tenantry.post_update("filin", updates.command("start", user_id=7001))
    assert response.status_code == 200
    replies = await bot_api.wait_for("sendMessage", chat_id=7001)
    assert replies[0].params["text"] == "lazy hello"
    assert tenant.dispatcher is not None
    assert ((await _health(tenantry))["loaded"]) == 1
    # Idle for longer than tenants_idle_seconds: dropped, and built again by the next update.
    for _ in range(60):
        if tenant.dispatcher is None:
            break
        await asyncio.sleep(0.05)
    assert tenant.dispatcher is None
    response = await tenantry.post_update("filin", updates.command("help", user_id=7002))
    assert response.status_code == 200
    await bot_api.wait_for("sendMessage", chat_id=7002)
    assert len(bot_api.calls("setWebhook", bot_id=_bot_id(config))) == 1


async def test_concurrent_first_updates_build_the_bot_once(tenantry, bot_api, monkeypatch):
    config = tenantry.add_tenant("filin")
    updates = UpdateFactory(bot_id=_bot_id(config))
    await tenantry.start(public_url=PUBLIC_URL)
    await _registered(tenantry, "filin")
    await tenantry.stop()
    await tenantry.start(public_url=PUBLIC_URL)
    builds = []
    loader = tenantry.runtime.registry.loader
    original = loader.build

    async def counted(tenant):
        builds.append(tenant.id)
        await asyncio.sleep(0.05)  # a slow plugin router: the others arrive meanwhile
        await original(tenant)

    monkeypatch.setattr(loader, "build", counted)
    users = range(7101, 7111)
    responses = await asyncio.gather(
        *(tenantry.post_update("filin", updates.command("start", user_id=u)) for u in users)
    )
    assert [r.status_code for r in responses] == [200] * len(users)
    assert builds == ["filin"]
    await bot_api.wait_for("sendMessage", bot_id=_bot_id(config), count=len(users))


async def test_beyond_loaded_max_the_least_recently_used_bots_are_dropped(tenantry):
    for name in ("alpha", "bravo", "charlie"):
        tenantry.add_tenant(name)
    await tenantry.start(public_url=PUBLIC_URL, tenants_idle_seconds=0)  # all built, kept
    registry = tenantry.runtime.registry
    for n, name in enumerate(("bravo", "alpha", "charlie")):
        registry.get(name).last_used = time.monotonic() - 10 + n  # bravo least recent
    assert registry.unload_idle(idle_seconds=3600, loaded_max=1) == 2
    assert [registry.get(n).dispatcher is not None for n in ("alpha", "bravo", "charlie")] == [
        False,
        False,
        True,
    ]


async def test_an_up_to_date_schema_is_not_migrated_again_and_a_recreated_one_is(tenantry):
    config = tenantry.add_tenant("filin")
    schema = config["storage"]["schema"]
    await tenantry.start(public_url=PUBLIC_URL)
    states = await tenantry.sql(
        f'SELECT schema_name, schema_oid FROM "{tenantry.control_schema}".tenant_schema_states'
        " WHERE schema_name = $1",
        schema,
    )
    oid = await tenantry.sql("SELECT oid FROM pg_namespace WHERE nspname = $1", schema)
    assert [s["schema_oid"] for s in states] == [oid[0]["oid"]]
    await tenantry.stop()

    # Up to date: the start does not touch the schema (the advisory lock of a migration
    # held elsewhere would block a migrating start; this one is not blocked).
    import asyncpg

    blocker = await asyncpg.connect(tenantry.database_url)
    try:
        await blocker.execute("BEGIN")
        await blocker.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"tenantry:migrate:{schema}"
        )
        await asyncio.wait_for(tenantry.start(), timeout=20)
        assert tenantry.runtime.registry.get("filin").state == "running"
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
    await tenantry.stop()

    # Dropped behind the runtime's back: a new oid, so the next start migrates it again.
    await tenantry.sql(f'DROP SCHEMA "{schema}" CASCADE')
    await tenantry.start(public_url=PUBLIC_URL)
    assert tenantry.runtime.registry.get("filin").state == "running"
    tables = await tenantry.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
        " AND table_name = 'users'",
        schema,
    )
    assert tables == [{"table_name": "users"}]


async def test_a_restart_reads_every_registration_in_one_pipeline(tenantry, monkeypatch):
    from core.updates.registration import Registrar

    for n in range(12):
        tenantry.add_tenant(f"shop{n}")
    await tenantry.start(public_url=PUBLIC_URL)
    for n in range(12):
        await _registered(tenantry, f"shop{n}")
    await tenantry.stop()

    one_by_one: list[str] = []
    batches: list[int] = []
    registered, registered_all = Registrar.registered, Registrar.registered_all

    async def counting_one(self, tenant):
        one_by_one.append(tenant.id)
        return await registered(self, tenant)

    async def counting_all(self, tenants):
        batches.append(len(tenants))
        return await registered_all(self, tenants)

    monkeypatch.setattr(Registrar, "registered", counting_one)
    monkeypatch.setattr(Registrar, "registered_all", counting_all)
    await tenantry.start(public_url=PUBLIC_URL)
    registry = tenantry.runtime.registry
    assert {t.state for t in registry.tenants.values()} == {"running"}
    assert all(t.dispatcher is None for t in registry.tenants.values()), "all registered"
    assert batches == [12] and one_by_one == []


async def test_drain_waits_for_what_is_in_flight(tenantry):
    tenantry.add_tenant("filin")
    await tenantry.start()
    tenant = tenantry.runtime.registry.get("filin")
    await asyncio.wait_for(tenant.drain(), 1)  # nothing in flight: at once
    with tenant.track():
        waiting = asyncio.ensure_future(tenant.drain())
        await asyncio.sleep(0.05)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1)
    with tenant.track(), tenant.track():
        again = asyncio.ensure_future(tenant.drain())
        await asyncio.sleep(0.05)
        assert not again.done()
    await asyncio.wait_for(again, 1)
