"""Two runtimes on one campaign, kill -9 of one mid-campaign, and a restart: nobody gets a message twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from _broadcast_support import Shop, sends

from core.testing.plugin import free_port

SUBSCRIBERS = range(5000, 5120)


def spawn_runtime(tenantry, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """A second runtime as a real process (``tenantry run``) sharing the tenants, storage and claims."""
    port = free_port()
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": tenantry.database_url,
        "TENANTRY_REDIS_URL": tenantry.redis_url,
        "TENANTRY_BOT_API_URL": tenantry.bot_api.base_url,
        "TENANTRY_CONTROL_SCHEMA": tenantry.control_schema,
        "TENANTRY_QUEUE": f"tenantry-test-{tenantry.run_id}",
        "TENANTRY_SECRET_KEY": tenantry.secret_key,
        "TENANTRY_ADMIN_TOKEN": tenantry.admin_token,
        "TENANTRY_DATA_DIR": str(tmp_path / "second"),
        "TENANTRY_WATCH": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "run",
            "--tenants",
            str(tenantry.tenants_dir),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_serving(url: str, tenant_id: str, token: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            try:
                health = (
                    await client.get("/health", headers={"Authorization": f"Bearer {token}"})
                ).json()
                if any(t["id"] == tenant_id and t["state"] == "running" for t in health["tenants"]):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the second runtime did not serve {tenant_id} within {timeout} s")


async def test_two_runtimes_share_a_campaign_and_kill_9_sends_nobody_twice(
    tenantry, bot_api, tmp_path
):
    config = tenantry.add_tenant(
        "crash", features={"broadcast": {"rate_per_second": 20, "failover_seconds": 3}}
    )
    process, url = spawn_runtime(tenantry, tmp_path)
    try:
        await tenantry.start()
        shop = Shop(tenantry, config)
        await wait_serving(url, "crash", tenantry.admin_token)
        await shop.add_subscribers(SUBSCRIBERS)
        campaign = await shop.create()
        marker = f"%:{process.pid}:%"
        deadline = time.monotonic() + 20
        while True:  # until the second runtime has sent its share of the first messages
            [row] = await shop.sql(
                "SELECT count(*) AS n FROM {s}.broadcast_deliveries WHERE status = 'sent'"
                " AND claimed_by LIKE $1",
                marker,
            )
            if row["n"] >= 10:
                break
            assert time.monotonic() < deadline, "the second runtime sent nothing"
            await asyncio.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

        view = await shop.wait_status(campaign["id"], "done", timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    counts = view["counts"]
    rows = await shop.deliveries(campaign["id"])
    runners = {r["claimed_by"].rsplit(":", 2)[1] for r in rows if r["status"] == "sent"}
    assert runners == {str(os.getpid()), str(process.pid)}  # both runtimes sent
    delivered = Counter(c.params["chat_id"] for c in sends(bot_api, shop.bot_id))
    assert max(delivered.values()) == 1, "a recipient got the campaign twice"
    unknown = {r["chat_id"] for r in rows if r["status"] == "unknown"}
    sent = {r["chat_id"] for r in rows if r["status"] == "sent"}
    assert counts["sent"] + counts["unknown"] == len(SUBSCRIBERS)
    # Only the sends in flight at the kill are unknown (at most one per sender task).
    assert len(unknown) <= 5
    assert sent <= set(delivered) <= sent | unknown
    assert all(
        r["claimed_by"].split(":")[1] == str(process.pid) for r in rows if r["status"] == "unknown"
    )


async def test_restart_mid_campaign_resumes_without_duplicates(tenantry, bot_api):
    config = tenantry.add_tenant("restart", features={"broadcast": {"rate_per_second": 20}})
    await tenantry.start()
    shop = Shop(tenantry, config)
    await shop.add_subscribers(range(6000, 6040))
    campaign = await shop.create()
    await shop.wait_sent(campaign["id"], 10)
    await tenantry.stop()  # a graceful stop: sends in flight finish, claims are released
    [row] = await shop.sql(
        "SELECT count(*) FILTER (WHERE status = 'sent') AS sent,"
        " count(*) FILTER (WHERE status = 'sending') AS sending,"
        " count(*) FILTER (WHERE claimed_by IS NOT NULL AND status = 'pending') AS claimed"
        " FROM {s}.broadcast_deliveries"
    )
    assert 10 <= row["sent"] < 40 and row["sending"] == 0 and row["claimed"] == 0

    await tenantry.start()
    view = await shop.wait_status(campaign["id"], "done")
    assert (view["counts"]["sent"], view["counts"]["unknown"]) == (40, 0)
    delivered = Counter(c.params["chat_id"] for c in sends(bot_api, shop.bot_id))
    assert sorted(delivered) == list(range(6000, 6040))
    assert set(delivered.values()) == {1}
