"""A runtime behind PgBouncer in transaction mode (Debian's pgbouncer): every statement of a
tenant runs in its own schema although server connections change hands between transactions,
and LISTEN (the events relay, the tenant store) goes to PostgreSQL itself."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from core.testing.plugin import free_port
from core.testing.updates import UpdateFactory

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = pytest.mark.skipif(
    not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed (apt-get install pgbouncer)"
)
SERVER_CONNECTIONS = 2
"""PgBouncer's server connections per database/user: fewer than the runtime's pool."""


@pytest.fixture
def pgbouncer(tmp_path_factory, tenantry_database_url):
    """PgBouncer in transaction mode in front of the test database; yields its URL."""
    target = urlsplit(tenantry_database_url)
    if target.hostname in (None, "") or target.port is None:
        pytest.skip(
            "the test database is not reachable over TCP (embedded): PgBouncer needs a port"
        )
    folder = tmp_path_factory.mktemp("pgbouncer")
    folder.chmod(0o755)  # pgbouncer drops root for "nobody", which must read its files
    port = free_port()
    user = target.username or "postgres"
    database = target.path.lstrip("/") or "postgres"
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host={target.hostname} port={target.port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
admin_users = {user}
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
"""
    )
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
        ).returncode:
            assert process.poll() is None, "pgbouncer exited"
            assert time.monotonic() < deadline, "pgbouncer did not start"
            time.sleep(0.1)
        yield f"postgresql://{user}@127.0.0.1:{port}/{database}", port, user
    finally:
        process.terminate()
        process.wait(10)


def _pools(port: int, user: str) -> str:
    """PgBouncer's ``SHOW POOLS`` (its admin console speaks only the simple protocol)."""
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-At", "pgbouncer",
         "-c", "SHOW POOLS"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


async def test_tenants_behind_pgbouncer_in_transaction_mode_stay_in_their_schemas(
    tenantry, tenantry_database_url, pgbouncer, sample, bot_api
):
    url, port, user = pgbouncer
    configs = {
        name: tenantry.add_tenant(name, features={"sample": {}}) for name in ("filin", "glow")
    }
    await tenantry.start(
        plugins=[("sample", sample)],
        database_url=url,
        database_listen_url=tenantry_database_url,
        transaction_pooling=True,
        pool_max_size=8,
    )
    # Many concurrent updates over 2 server connections: a session-level search_path would
    # follow a server connection to the other tenant's statements.
    sends = []
    for name, config in configs.items():
        updates = UpdateFactory(bot_id=int(config["bot"]["token"].split(":")[0]))
        base = 9000 if name == "filin" else 9500
        sends += [
            tenantry.post_update(name, updates.command("start", user_id=base + n))
            for n in range(25)
        ]
    responses = await asyncio.gather(*sends)
    assert [r.status_code for r in responses] == [200] * len(sends)
    for name, config in configs.items():
        schema = config["storage"]["schema"]
        rows = await tenantry.sql(f'SELECT telegram_id FROM "{schema}".users ORDER BY 1')
        base = 9000 if name == "filin" else 9500
        assert [r["telegram_id"] for r in rows] == [base + n for n in range(25)], name
    assert len(bot_api.calls("sendMessage")) == len(sends)

    # An event committed through PgBouncer is relayed (NOTIFY inside the transaction,
    # LISTEN on PostgreSQL itself) and consumed.
    tenant = tenantry.runtime.registry.get("glow")
    async with tenant.db.transaction() as conn:
        event = await tenant.publish("sample.created", {"title": "pooled"}, conn=conn)
    for _ in range(100):
        if event.id in sample.EVENT_IDS:
            break
        await asyncio.sleep(0.05)
    assert sample.EVENT_IDS == [event.id]

    pools = _pools(port, user)
    assert pools.strip(), "no client went through PgBouncer"
    # No runtime statement outlived its transaction on a shared server connection.
    leftovers = await tenantry.sql(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'idle in transaction'"
        " AND application_name LIKE 'tenantry-test-%'"
    )
    assert leftovers[0]["n"] == 0
