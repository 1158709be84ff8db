"""Ops on a running system: add, change, bad change and remove tenants, by file and by admin API."""

from __future__ import annotations

import asyncio

import yaml

RELOAD_DEADLINE = 5.0  # seconds the issue allows for a file change to take effect


def bot_id(config: dict) -> int:
    return int(config["bot"]["token"].split(":")[0])


async def answers(tenantry, bot_api, tenant_id, config, updates, user_id=9) -> str:
    """Send /start to ``tenant_id`` and return the text it answered."""
    before = len(bot_api.calls("sendMessage", bot_id=bot_id(config)))
    response = await tenantry.post_update(tenant_id, updates.command("start", user_id=user_id))
    assert response.status_code == 200, response.text
    calls = await bot_api.wait_for("sendMessage", bot_id=bot_id(config), count=before + 1)
    return calls[-1].params["text"]


async def keep_answering(
    tenantry, bot_api, updates, config, stop: asyncio.Event, failures: list
) -> int:
    """Post /start to the bystander tenant until ``stop``; record any non-200."""
    sent = 0
    while not stop.is_set():
        response = await tenantry.post_update("glow", updates.command("start", user_id=1000 + sent))
        if response.status_code != 200:
            failures.append(response.status_code)
        sent += 1
        await asyncio.sleep(0.02)
    return sent


async def test_file_add_change_bad_change_and_removal(tenantry, updates, bot_api):
    glow = tenantry.add_tenant("glow", texts={"welcome": "glow here"})
    await tenantry.start(watch=True)
    stop, failures = asyncio.Event(), []
    bystander = asyncio.create_task(
        keep_answering(tenantry, bot_api, updates, glow, stop, failures)
    )

    # Add.
    filin = tenantry.add_tenant("filin", texts={"welcome": "v1"})
    await tenantry.wait_state("filin", "running", timeout=RELOAD_DEADLINE)
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "v1"

    # Change.
    changed = dict(filin, texts={"welcome": "v2"})
    tenantry.write_tenant("filin", yaml.safe_dump(changed))
    deadline = asyncio.get_running_loop().time() + RELOAD_DEADLINE
    while await answers(tenantry, bot_api, "filin", filin, updates) != "v2":
        assert asyncio.get_running_loop().time() < deadline, "the change did not take effect in 5 s"
        await asyncio.sleep(0.1)

    # Bad change: rejected with its errors, the last good config keeps serving.
    tenantry.write_tenant(
        "filin", yaml.safe_dump(changed).replace("mode: webhook", "mode: smoke-signals")
    )
    deadline = asyncio.get_running_loop().time() + RELOAD_DEADLINE
    while True:
        health = (await tenantry.client.get("/health", headers=tenantry.admin_headers())).json()
        rejected = [
            errs for path, errs in health["rejected"].items() if path.endswith("filin.yaml")
        ]
        if rejected:
            break
        assert asyncio.get_running_loop().time() < deadline, "the bad file was not reported"
        await asyncio.sleep(0.1)
    assert "bot.mode: expected str matching regex" in rejected[0][0]
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "v2"
    assert next(t for t in health["tenants"] if t["id"] == "filin")["state"] == "running"

    # Removal: the bot stops, the data stays.
    (tenantry.tenants_dir / "filin.yaml").unlink()
    await tenantry.wait_state("filin", None, timeout=RELOAD_DEADLINE)
    response = await tenantry.post_update(
        "filin", updates.command("start", user_id=5), secret="whatever"
    )
    assert response.status_code == 404
    schema = filin["storage"]["schema"]
    assert await tenantry.sql(f'SELECT count(*) AS n FROM "{schema}".users') == [{"n": 1}]
    assert (await tenantry.client.get("/health")).json()["rejected"] == 0

    stop.set()
    sent = await bystander
    assert sent > 10
    assert failures == []


async def test_admin_api_add_reload_and_delete(tenantry, updates, bot_api):
    glow = tenantry.add_tenant("glow")
    await tenantry.start(watch=False)
    admin = tenantry.admin_headers()

    assert (await tenantry.client.get("/admin/tenants")).status_code == 401
    bad_token = await tenantry.client.get(
        "/admin/tenants", headers={"Authorization": "Bearer nope"}
    )
    assert bad_token.status_code == 401

    filin = tenantry.tenant_config("filin", texts={"welcome": "posted"})
    created = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(filin), headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "running"
    assert (tenantry.tenants_dir / "filin.yaml").exists()
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "posted"

    invalid_text = yaml.safe_dump(dict(filin, locale=12))
    invalid = await tenantry.client.post("/admin/tenants", content=invalid_text, headers=admin)
    assert invalid.status_code == 422
    line = invalid_text.splitlines().index("locale: 12") + 1
    assert invalid.json()["errors"] == [f"<admin upload>:{line}: locale: expected str, got 12"]
    clash = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(dict(filin, id="copy")), headers=admin
    )
    assert clash.status_code == 422
    assert any("schema" in e for e in clash.json()["errors"])
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "posted"

    tenantry.write_tenant("filin", yaml.safe_dump(dict(filin, texts={"welcome": "reloaded"})))
    reloaded = await tenantry.client.post("/admin/tenants/filin/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "reloaded"

    tenantry.write_tenant("filin", "id: filin\nbot: {token: 1}\n")
    refused = await tenantry.client.post("/admin/tenants/filin/reload", headers=admin)
    assert refused.status_code == 422
    assert "bot.token" in refused.json()["errors"][0]
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "reloaded"

    listed = (await tenantry.client.get("/admin/tenants", headers=admin)).json()
    assert {t["id"]: t["state"] for t in listed["tenants"]} == {
        "glow": "running",
        "filin": "running",
    }

    deleted = await tenantry.client.delete("/admin/tenants/filin", headers=admin)
    assert deleted.status_code == 200
    assert not (tenantry.tenants_dir / "filin.yaml").exists()
    assert (await tenantry.client.get("/admin/tenants/filin", headers=admin)).status_code == 404
    assert (await tenantry.client.delete("/admin/tenants/filin", headers=admin)).status_code == 404
    assert await answers(tenantry, bot_api, "glow", glow, updates) == "Hello! I am the bot of Glow."


async def test_swap_lets_in_flight_updates_finish_on_the_old_config(
    tenantry, updates, bot_api, sample
):
    """An update being processed when the tenant is swapped completes with the old settings."""
    filin = tenantry.add_tenant("filin", features={"sample": {"greeting": "old"}})
    # Bots built at start and kept: the test wraps the old Dispatcher.
    await tenantry.start(watch=False, plugins=[("sample", sample)], tenants_idle_seconds=0)
    runtime = tenantry.runtime
    old = runtime.registry.get("filin")
    gate = asyncio.Event()
    original_feed = old.dispatcher.feed_update

    async def slow_feed(bot, update, **kwargs):
        await gate.wait()
        return await original_feed(bot, update, **kwargs)

    old.dispatcher.feed_update = slow_feed
    in_flight = asyncio.create_task(
        tenantry.post_update("filin", updates.command("ping", user_id=4))
    )
    await asyncio.sleep(0.2)
    tenantry.write_tenant(
        "filin", yaml.safe_dump(dict(filin, features={"sample": {"greeting": "new"}}))
    )
    swapped = await tenantry.client.post(
        "/admin/tenants/filin/reload", headers=tenantry.admin_headers()
    )
    assert swapped.status_code == 200
    assert runtime.registry.get("filin") is not old
    assert old.state == "running"  # still draining
    gate.set()
    assert (await in_flight).status_code == 200
    await tenantry.post_update("filin", updates.command("ping", user_id=4))
    texts = [
        c.params["text"]
        for c in await bot_api.wait_for("sendMessage", bot_id=bot_id(filin), count=2)
    ]
    assert texts == ["old", "new"]
    for _ in range(50):
        if old.state == "stopped":
            break
        await asyncio.sleep(0.05)
    assert old.state == "stopped"


async def test_a_new_file_clashing_with_a_running_tenant_is_rejected_and_the_running_one_keeps_serving(
    tenantry, updates, bot_api
):
    zeta = tenantry.add_tenant("zeta", texts={"welcome": "zeta"})
    await tenantry.start(watch=True)
    # "alpha" sorts before "zeta" and claims zeta's schema.
    alpha = tenantry.tenant_config("alpha")
    alpha["storage"]["schema"] = zeta["storage"]["schema"]
    tenantry.write_tenant("alpha", yaml.safe_dump(alpha))
    deadline = asyncio.get_running_loop().time() + RELOAD_DEADLINE
    while True:
        health = await tenantry.client.get("/health", headers=tenantry.admin_headers())
        rejected = health.json()["rejected"]
        if any(path.endswith("alpha.yaml") for path in rejected):
            break
        assert asyncio.get_running_loop().time() < deadline, "the clash was not reported"
        await asyncio.sleep(0.1)
    [errors] = [errs for path, errs in rejected.items() if path.endswith("alpha.yaml")]
    assert "storage.schema: schema" in errors[0]
    assert not any(path.endswith("zeta.yaml") for path in rejected)
    assert await answers(tenantry, bot_api, "zeta", zeta, updates) == "zeta"
    state = await tenantry.wait_state("zeta", "running")
    assert state["uptime_seconds"] is not None
