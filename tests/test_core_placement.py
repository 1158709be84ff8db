"""Tenants placed on two PostgreSQL servers (``storage.database``, docs/ops.md "Placement").

The default server is the test database (``TENANTRY_TEST_DATABASE_URL`` or the
embedded one); the second is a PostgreSQL 16 of its own (pgserver), started
once for this module in a temporary folder and thrown away after it
(tests/_core_placement_support.py). Moving a tenant from one server to the
other: tests/test_core_placement_moves.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _core_placement_support import SECOND, _fetch, _schemas, _wait_for, second_postgres

from core.config.model import ConfigError, parse_tenant_text
from core.runtime.settings import database_urls_from_env


@pytest.fixture(scope="module")
def second_server() -> Iterator[str]:
    """DSN of a second PostgreSQL server (pgserver), for this module only."""
    with second_postgres() as dsn:
        yield dsn


def _titles(sample, tenant_id: str) -> list[str]:
    return [payload["title"] for tid, _, payload in sample.EVENTS if tid == tenant_id]


async def test_tenants_on_two_servers_migrate_serve_and_relay_events_on_their_own(
    tenantry, updates, second_server, sample
):
    filin = tenantry.add_tenant("filin", features={"sample": {}})
    glow = tenantry.tenant_config("glow", features={"sample": {}})
    glow["storage"]["database"] = SECOND
    tenantry.write_tenant("glow", yaml.safe_dump(glow, sort_keys=False))
    filin_schema, glow_schema = filin["storage"]["schema"], glow["storage"]["schema"]
    # A sweep only every 10 minutes: an event moves because its NOTIFY woke the relay.
    await tenantry.start(
        watch=False,
        plugins=[("sample", sample)],
        databases={SECOND: second_server},
        events_sweep_seconds=600,
    )
    try:
        registry = tenantry.runtime.registry
        assert registry.get("filin").state == "running", registry.get("filin").detail
        assert registry.get("glow").state == "running", registry.get("glow").detail
        assert registry.get("glow").db.pool is tenantry.runtime.pools[SECOND]
        assert registry.get("filin").db.pool is tenantry.runtime.pool

        # Each schema was migrated on its own server, and only there.
        assert await _schemas(tenantry.database_url, filin_schema, glow_schema) == {filin_schema}
        assert await _schemas(second_server, filin_schema, glow_schema) == {glow_schema}
        # The default server's states where runtimes of the previous release
        # read and write them; the other servers' apart (control migration 0005).
        control = tenantry.control_schema
        assert await tenantry.sql(f'SELECT schema_name FROM "{control}".tenant_schema_states') == [
            {"schema_name": filin_schema}
        ]
        states = await tenantry.sql(
            f'SELECT database_name, schema_name FROM "{control}".server_schema_states'
        )
        assert states == [{"database_name": SECOND, "schema_name": glow_schema}]

        for tenant_id, user_id in (("filin", 601), ("glow", 602)):
            response = await tenantry.post_update(
                tenant_id, updates.command("start", user_id=user_id)
            )
            assert response.status_code == 200, response.text
        assert await tenantry.sql(f'SELECT telegram_id FROM "{filin_schema}".users') == [
            {"telegram_id": 601}
        ]
        assert await _fetch(second_server, f'SELECT telegram_id FROM "{glow_schema}".users') == [
            {"telegram_id": 602}
        ]

        glow_tenant = registry.get("glow")
        event = await glow_tenant.publish("sample.created", {"title": "from the second server"})
        await _wait_for(lambda: _titles(sample, "glow") == ["from the second server"], 5)
        assert event.id in sample.EVENT_IDS
        assert await glow_tenant.events_delivered()
        assert await _fetch(second_server, f'SELECT * FROM "{glow_schema}".tenantry_outbox') == []

        # Claims name the server of a schema that is not on the default one.
        claims = await tenantry.sql(
            f'SELECT value, tenant_id FROM "{tenantry.control_schema}".storage_claims '
            "WHERE resource = 'schema' ORDER BY tenant_id"
        )
        assert claims == [
            {"value": filin_schema, "tenant_id": "filin"},
            {"value": f"{SECOND}/{glow_schema}", "tenant_id": "glow"},
        ]

        # A restart finds both schemas up to date (digest and oid), each on its server.
        await tenantry.stop()
        await tenantry.start(
            watch=False, plugins=[("sample", sample)], databases={SECOND: second_server}
        )
        fresh = tenantry.runtime.registry.schemas.fresh
        assert filin_schema in fresh and f"{SECOND}/{glow_schema}" in fresh
        assert tenantry.runtime.registry.get("glow").state == "running"
    finally:
        await tenantry.stop()
        await _fetch(second_server, f'DROP SCHEMA IF EXISTS "{glow_schema}" CASCADE')


async def test_one_schema_name_on_two_servers_is_two_tenants(tenantry, second_server):
    filin = tenantry.add_tenant("filin")
    glow = tenantry.tenant_config("glow")
    glow["storage"] = {**glow["storage"], "schema": filin["storage"]["schema"]}
    glow["storage"]["database"] = SECOND
    tenantry.write_tenant("glow", yaml.safe_dump(glow, sort_keys=False))
    await tenantry.start(watch=False, databases={SECOND: second_server})
    try:
        registry = tenantry.runtime.registry
        assert registry.rejected == {}
        assert registry.get("filin").state == "running"
        assert registry.get("glow").state == "running"
    finally:
        await tenantry.stop()
        await _fetch(second_server, f'DROP SCHEMA IF EXISTS "{filin["storage"]["schema"]}" CASCADE')


async def test_a_tenant_naming_an_unknown_server_is_refused_with_file_line_and_field(
    tenantry, second_server
):
    tenantry.add_tenant("filin")
    config = tenantry.tenant_config("mars")
    config["storage"]["database"] = "mars"
    path = tenantry.write_tenant("mars", yaml.safe_dump(config, sort_keys=False))
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "database: mars" in text
    )
    await tenantry.start(watch=False, databases={SECOND: second_server})
    registry = tenantry.runtime.registry
    assert registry.get("filin").state == "running"
    assert registry.get("mars") is None
    [issue] = registry.rejected[str(path)]
    assert (issue.file, issue.line, issue.path) == (str(path), line, "storage.database")
    assert "unknown PostgreSQL server 'mars'" in issue.reason
    assert "known: default, second" in issue.reason


def test_server_names_come_from_the_environment():
    text = "id: filin\nbot:\n  token: '1:x'\nstorage:\n  database: eu2\n"
    env = {"TENANTRY_DATABASE_URL_EU2": "postgresql://eu2.example/db"}
    config, _ = parse_tenant_text(text, "filin.yaml", env)
    assert config.storage.database == "eu2"
    with pytest.raises(ConfigError) as refused:
        parse_tenant_text(text, "filin.yaml", {})
    [issue] = refused.value.issues
    assert (issue.line, issue.path) == (5, "storage.database")
    assert "known: default;" in issue.reason

    assert database_urls_from_env(env) == {"eu2": "postgresql://eu2.example/db"}
    with pytest.raises(ValueError, match="TENANTRY_DATABASE_URL_DEFAULT"):
        database_urls_from_env({"TENANTRY_DATABASE_URL_DEFAULT": "postgresql://x/db"})
    with pytest.raises(ValueError, match="TENANTRY_DATABASE_URL_EU-2"):
        database_urls_from_env({"TENANTRY_DATABASE_URL_EU-2": "postgresql://x/db"})


async def test_tenantry_migrate_migrates_each_schema_on_its_own_server(
    tmp_path, tenantry_database_url, second_server
):
    schema = f"cli_{secrets.token_hex(4)}"
    (tmp_path / "shop.yaml").write_text(
        f'id: shop\nbot: {{token: "5:abc"}}\n'
        f'storage: {{schema: {schema}, redis_prefix: "{schema}:", database: {SECOND}}}\n'
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "core.cli", "migrate", "--tenants", str(tmp_path)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "TENANTRY_DATABASE_URL": tenantry_database_url,
            f"TENANTRY_DATABASE_URL_{SECOND.upper()}": second_server,
        },
        timeout=120,
    )
    try:
        assert result.returncode == 0, result.stderr
        assert f"shop ({SECOND}/{schema}): core/0001_users.sql" in result.stdout
        assert await _schemas(second_server, schema) == {schema}
        assert await _schemas(tenantry_database_url, schema) == set()
    finally:
        await _fetch(second_server, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class _Outage:
    """A TCP door to a PostgreSQL server's unix socket that can be shut (docs/ops.md "Placement").

    While shut, connections to it are refused and the ones it carried are
    reset, which is what a runtime sees of a server that went down or a
    network that failed; the server behind it keeps running for the other
    tests of this module.
    """

    def __init__(self, dsn: str):
        socket_dir = Path(dsn.rsplit("host=", 1)[1])
        [self.socket] = [p for p in socket_dir.glob(".s.PGSQL.*") if p.suffix != ".lock"]
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def dsn(self, password: str) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"

    async def open(self) -> None:
        self._server = await asyncio.start_server(
            self._carry, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._server = None

    async def _carry(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_unix_connection(str(self.socket))
        self._writers |= {client_writer, server_writer}

        async def pump(reader, writer) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.transport.abort()
                self._writers.discard(writer)

        await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))


def _updates_counted(metrics: str, tenant_id: str, outcome: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("tenantry_updates_total{") and (
            f'tenant="{tenant_id}"' in line and f'outcome="{outcome}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_health_shows_each_server_and_the_tenants_of_a_server_that_is_down(
    tenantry, updates, second_server
):
    password = "pg2-password-" + secrets.token_hex(4)
    door = _Outage(second_server)
    await door.open()
    url = door.dsn(password)
    tenantry.add_tenant("filin")
    glow = tenantry.tenant_config("glow")
    glow["storage"]["database"] = SECOND
    tenantry.write_tenant("glow", yaml.safe_dump(glow, sort_keys=False))
    glow_schema = glow["storage"]["schema"]
    await tenantry.start(watch=False, databases={SECOND: url})
    try:
        body = (await tenantry.client.get("/health")).json()
        assert body["status"] == "ok" and body["databases"] == {"default": "ok", SECOND: "ok"}
        assert [(t["id"], t["storage"]) for t in body["tenants"]] == [
            ("filin", "ok"),
            ("glow", "ok"),
        ]

        await door.shut()
        metrics = (await tenantry.client.get("/metrics")).text
        refused_before = _updates_counted(metrics, "glow", "storage_unavailable")
        began = time.monotonic()
        public = await tenantry.client.get("/health")
        assert time.monotonic() - began < 1.5  # a refused connection fails at once
        # 200: the runtime still serves the tenants of the default server, and
        # every runtime sees the same server down, so none should leave the
        # load balancer for it.
        assert public.status_code == 200
        body = public.json()
        body.pop("loaded"), body.pop("idle")
        assert body == {
            "status": "partial",
            "database": "ok",
            "redis": "ok",
            "tenants": [
                {"id": "filin", "state": "running", "storage": "ok"},
                {"id": "glow", "state": "running", "storage": "error"},
            ],
            "rejected": 0,
            "databases": {"default": "ok", SECOND: "error"},
        }

        full = await tenantry.client.get("/health", headers=tenantry.admin_headers())
        assert full.status_code == 200
        assert password not in full.text and url not in full.text
        assert str(door.port) in full.json()["databases"][SECOND]  # ops see where it failed
        assert full.json()["databases"][SECOND].startswith("error: ")
        entries = {t["id"]: t for t in full.json()["tenants"]}
        assert (entries["glow"]["database"], entries["glow"]["storage"]) == (SECOND, "error")
        assert (entries["filin"]["database"], entries["filin"]["storage"]) == ("default", "ok")

        # Its updates are given back to Telegram; the default server's tenant is served.
        refused = await tenantry.post_update("glow", updates.command("start", user_id=611))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        served = await tenantry.post_update("filin", updates.command("start", user_id=612))
        assert served.status_code == 200, served.text
        metrics = (await tenantry.client.get("/metrics")).text
        assert _updates_counted(metrics, "glow", "storage_unavailable") == refused_before + 1
        assert 'tenantry_tenant_state{state="running",tenant="glow"} 1.0' in metrics

        await door.open()
        deadline = time.monotonic() + 5
        while (body := (await tenantry.client.get("/health")).json())["status"] != "ok":
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)
        assert body["databases"] == {"default": "ok", SECOND: "ok"}
        served = await tenantry.post_update("glow", updates.command("start", user_id=611))
        assert served.status_code == 200, served.text
        assert await _fetch(second_server, f'SELECT telegram_id FROM "{glow_schema}".users') == [
            {"telegram_id": 611}
        ]
    finally:
        await tenantry.stop()
        if door._server is not None:
            await door.shut()
        await _fetch(second_server, f'DROP SCHEMA IF EXISTS "{glow_schema}" CASCADE')
