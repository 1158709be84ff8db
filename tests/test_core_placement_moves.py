"""A tenant moved from one PostgreSQL server to another (``tenantry tenants move``, docs/ops.md).

The default server is the test database (``TENANTRY_TEST_DATABASE_URL`` or the
embedded one); the second is a PostgreSQL 16 of its own (pgserver), started
once for this module in a temporary folder and thrown away after it
(tests/_core_placement_support.py). Tenants placed on the two servers:
tests/test_core_placement.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from _core_placement_support import SECOND, _fetch, _schemas, _wait_for, second_postgres
from test_core_cli_tenants import tenants_cli


@pytest.fixture(scope="module")
def second_server() -> Iterator[str]:
    """DSN of a second PostgreSQL server (pgserver), for this module only."""
    with second_postgres() as dsn:
        yield dsn


async def _tenants_cli(tenantry, *args):
    return await tenants_cli(tenantry, *args, timeout=120)


async def test_a_tenant_moves_to_another_server_and_back_dropping_the_old_copy(
    tenantry, updates, second_server, sample
):
    filin = tenantry.add_tenant("filin", features={"sample": {}})
    schema = filin["storage"]["schema"]
    await tenantry.start(
        watch=False, plugins=[("sample", sample)], databases={SECOND: second_server}
    )
    try:
        for user_id in (701, 702, 703):
            response = await tenantry.post_update(
                "filin", updates.command("start", user_id=user_id)
            )
            assert response.status_code == 200, response.text

        status, out, err = await _tenants_cli(tenantry, "move", "filin", "--to", SECOND)
        assert (status, err) == (0, ""), out
        assert "users" in out and "moved from default to second (running)" in out
        assert "the old copy is kept" in out
        registry = tenantry.runtime.registry
        tenant = registry.get("filin")
        assert tenant.config.storage.database == SECOND
        assert tenant.db.pool is tenantry.runtime.pools[SECOND]
        # The stored version and the folder file name the new server.
        assert "database: second" in (tenantry.tenants_dir / "filin.yaml").read_text()

        moved = f'SELECT telegram_id FROM "{schema}".users ORDER BY telegram_id'
        assert await _fetch(second_server, moved) == [
            {"telegram_id": 701},
            {"telegram_id": 702},
            {"telegram_id": 703},
        ]
        # It serves, writes and publishes from the new server; the old copy stays as it was.
        response = await tenantry.post_update("filin", updates.command("start", user_id=704))
        assert response.status_code == 200, response.text
        assert len(await _fetch(second_server, moved)) == 4
        assert len(await tenantry.sql(moved)) == 3
        # The old copy is kept read-only: a runtime that missed the move gets
        # 25006 (answered 503, so Telegram re-sends) instead of writing there.
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError, match="moved to another server"):
            await tenantry.sql(f'INSERT INTO "{schema}".users (telegram_id) VALUES (799)')
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await tenantry.sql(f'DELETE FROM "{schema}".users')
        assert len(await tenantry.sql(moved)) == 3
        event = await tenant.publish("sample.created", {"title": "after the move"})
        await _wait_for(lambda: event.id in sample.EVENT_IDS, 5)

        # Back, dropping the copy on the second server; its claim is released.
        response = await tenantry.client.post(
            "/admin/tenants/filin/move",
            json={"to": "default", "drop_old": True},
            headers=tenantry.admin_headers(),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["source"], body["target"], body["dropped_old"]) == (SECOND, "default", True)
        users = next(t for t in body["tables"] if t["table"] == "users")
        assert users == {"table": "users", "source": 4, "target": 4}
        assert len(await tenantry.sql(moved)) == 4
        # Back on the kept copy, it is writable again.
        response = await tenantry.post_update("filin", updates.command("start", user_id=705))
        assert response.status_code == 200, response.text
        assert len(await tenantry.sql(moved)) == 5
        assert await _schemas(second_server, schema) == set()
        claims = await tenantry.sql(
            f'SELECT value FROM "{tenantry.control_schema}".storage_claims '
            "WHERE resource = 'schema' AND tenant_id = 'filin'"
        )
        assert claims == [{"value": schema}]

        # The current server, or an unknown one, is refused and changes nothing.
        for to in ("default", "mars"):
            response = await tenantry.client.post(
                "/admin/tenants/filin/move", json={"to": to}, headers=tenantry.admin_headers()
            )
            assert response.status_code == 422, response.text
        assert registry.get("filin").state == "running"
    finally:
        await tenantry.stop()
        await _fetch(second_server, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_a_failed_copy_puts_the_tenant_back_on_its_server(
    tenantry, updates, second_server, monkeypatch
):
    from core.runtime import placement

    filin = tenantry.add_tenant("filin")
    schema = filin["storage"]["schema"]
    await tenantry.start(watch=False, databases={SECOND: second_server})

    async def copy_fails(*_args, **_kwargs):
        raise placement.MoveError("row counts differ: users 3 != 2")

    monkeypatch.setattr(placement, "copy_schema", copy_fails)
    try:
        response = await tenantry.client.post(
            "/admin/tenants/filin/move", json={"to": SECOND}, headers=tenantry.admin_headers()
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "admin.move_failed"
        assert "row counts differ" in response.json()["errors"][0]
        tenant = tenantry.runtime.registry.get("filin")
        assert tenant.state == "running"
        assert tenant.config.storage.database == "default"
        response = await tenantry.post_update("filin", updates.command("start", user_id=801))
        assert response.status_code == 200, response.text
        assert await tenantry.sql(f'SELECT telegram_id FROM "{schema}".users') == [
            {"telegram_id": 801}
        ]
        assert "database:" not in (tenantry.tenants_dir / "filin.yaml").read_text()
    finally:
        await tenantry.stop()


async def test_every_runtime_follows_a_move(
    tenantry, updates, second_server, tmp_path, tenantry_database_url, tenantry_redis_url, bot_api
):
    from core.testing.plugin import TenantryHarness

    filin = tenantry.add_tenant("filin")
    schema = filin["storage"]["schema"]
    (tmp_path / "b").mkdir()
    other = TenantryHarness(tmp_path / "b", tenantry_database_url, tenantry_redis_url, bot_api)
    shared = {
        "control_schema": tenantry.control_schema,
        "queue_name": f"q-{tenantry.run_id}",
        "databases": {SECOND: second_server},
        "tenants_reread_seconds": 0.5,
    }
    try:
        await tenantry.start(watch=False, **shared)
        await other.start(watch=False, **shared)
        await _wait_for(lambda: other.runtime.registry.get("filin") is not None)
        response = await tenantry.post_update("filin", updates.command("start", user_id=901))
        assert response.status_code == 200, response.text

        response = await tenantry.client.post(
            "/admin/tenants/filin/move", json={"to": SECOND}, headers=tenantry.admin_headers()
        )
        assert response.status_code == 200, response.text

        def on_second() -> bool:
            tenant = other.runtime.registry.get("filin")
            return (
                tenant is not None
                and tenant.state == "running"
                and tenant.config.storage.database == SECOND
            )

        await _wait_for(on_second, 10)
        assert other.runtime.registry.get("filin").db.pool is other.runtime.pools[SECOND]
        response = await other.post_update("filin", updates.command("start", user_id=902))
        assert response.status_code == 200, response.text
        rows = await _fetch(
            second_server, f'SELECT telegram_id FROM "{schema}".users ORDER BY telegram_id'
        )
        assert rows == [{"telegram_id": 901}, {"telegram_id": 902}]
    finally:
        await other.stop()
        await tenantry.stop()
        await _fetch(second_server, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
