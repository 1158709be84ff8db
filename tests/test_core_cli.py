"""The tenantry command: migrate without serving, plugin listing, third-party entry points."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap

import asyncpg


def run_cli(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


async def test_migrate_applies_schema_without_serving(tmp_path, tenantry_database_url):
    schema = f"cli_{secrets.token_hex(4)}"
    (tmp_path / "shop.yaml").write_text(
        textwrap.dedent(f"""\
            id: shop
            bot: {{token: "5:abc"}}
            storage: {{schema: {schema}, redis_prefix: "{schema}:"}}
            """)
    )
    result = run_cli(
        "migrate",
        "--tenants",
        str(tmp_path),
        env={"TENANTRY_DATABASE_URL": tenantry_database_url},
    )
    assert result.returncode == 0, result.stderr
    assert f"shop ({schema}): core/0001_users.sql" in result.stdout
    again = run_cli(
        "migrate",
        "--tenants",
        str(tmp_path),
        env={"TENANTRY_DATABASE_URL": tenantry_database_url},
    )
    assert f"shop ({schema}): up to date" in again.stdout
    conn = await asyncpg.connect(tenantry_database_url)
    try:
        assert (
            await conn.fetchval("SELECT to_regclass($1)::text", f"{schema}.users")
            == f"{schema}.users"
        )
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def test_plugins_lists_builtins_with_hooks():
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert "register_routers" in plugins["core"]["hooks"]
    assert "booking" in plugins and "orders" in plugins


def test_third_party_plugin_is_found_through_entry_points(tmp_path):
    """A distribution declaring a ``tenantry.plugins`` entry point is loaded and can be enabled."""
    (tmp_path / "tenantry_loyalty.py").write_text(
        textwrap.dedent('''\
            """A third-party plugin."""
            import msgspec
            from core import hookimpl

            class LoyaltySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
                points_per_100: int = 5

            @hookimpl
            def register_settings():
                return LoyaltySettings
            ''')
    )
    dist = tmp_path / "tenantry_loyalty-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tenantry-loyalty\nVersion: 1.2.3\n"
    )
    (dist / "entry_points.txt").write_text("[tenantry.plugins]\nloyalty = tenantry_loyalty\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = run_cli("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    loyalty = next(p for p in json.loads(listed.stdout) if p["name"] == "loyalty")
    assert loyalty["version"] == "tenantry-loyalty 1.2.3"
    assert loyalty["hooks"] == ["register_settings"]

    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "cafe.yaml").write_text(
        'id: cafe\nbot: {token: "6:x"}\nfeatures:\n  loyalty: {points_per_100: "many"}\n'
    )
    checked = run_cli("check", "--tenants", str(tenants), env=env)
    assert checked.returncode == 1
    assert (
        'cafe.yaml:4: features.loyalty.points_per_100: expected int, got "many"' in checked.stderr
    )


async def test_run_serves_updates_and_stops_on_sigterm(
    tmp_path, tenantry_database_url, tenantry_redis_url, bot_api, updates
):
    """``tenantry run`` as ops start it: serves the folder's tenants, exits cleanly on SIGTERM."""
    import asyncio
    import signal

    import httpx

    from core.testing.plugin import free_port

    schema = f"cli_{secrets.token_hex(4)}"
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "shop.yaml").write_text(
        textwrap.dedent(f"""\
            id: shop
            texts: {{welcome: "hi from the CLI"}}
            bot: {{token: "7:abc", webhook_secret: cli-secret}}
            storage: {{schema: {schema}, redis_prefix: "{schema}:"}}
            """)
    )
    port = free_port()
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": tenantry_database_url,
        "TENANTRY_REDIS_URL": tenantry_redis_url,
        "TENANTRY_BOT_API_URL": bot_api.base_url,
        "TENANTRY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TENANTRY_DATA_DIR": str(tmp_path / "data"),
        "TENANTRY_QUEUE": f"cli-{schema}",
        # Storage claims and audit rows of this run go to a schema dropped below.
        "TENANTRY_CONTROL_SCHEMA": f"{schema}_control",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "run", "--tenants", str(tenants), "--port", str(port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    health = (await client.get("/health")).json()
                    if [t["state"] for t in health["tenants"]] == ["running"]:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("tenantry run did not start the tenant")
            response = await client.post(
                "/webhook/shop",
                json=updates.command("start", user_id=77),
                headers={"X-Telegram-Bot-Api-Secret-Token": "cli-secret"},
            )
            assert response.status_code == 200
        [reply] = await bot_api.wait_for("sendMessage", bot_id=7, chat_id=77)
        assert reply.params["text"] == "hi from the CLI"
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.returncode in (0, -signal.SIGTERM)
        log = (await process.stderr.read()).decode()
        assert "Application shutdown complete" in log
        assert "Traceback" not in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        conn = await asyncpg.connect(tenantry_database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}", "{schema}_control" CASCADE')
        finally:
            await conn.close()
        from redis.asyncio import Redis

        redis = Redis.from_url(tenantry_redis_url)
        try:
            for pattern in (f"{schema}:*", f"saq:*cli-{schema}*"):
                keys = [k async for k in redis.scan_iter(match=pattern)]
                if keys:
                    await redis.delete(*keys)
        finally:
            await redis.aclose()
