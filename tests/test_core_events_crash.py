"""Kill -9 a runtime process between an event's commit and its delivery; a restart delivers it once per group."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis

from core.testing.plugin import free_port

TESTS = Path(__file__).parent


def _log_file():
    # CRASH_LOG=path keeps the runtime processes' logs for debugging this test.
    return open(os.environ.get("CRASH_LOG", os.devnull), "ab")


async def _spawn(tenantry, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(TESTS / "crash_runtime.py"), str(port),
        env={**env, "TENANTRY_PUBLIC_URL": url}, cwd=str(TESTS.parent),
        stdout=_log_file(), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=url) as client:
        deadline = time.monotonic() + 60
        while True:
            assert process.returncode is None, "the runtime process exited"
            assert time.monotonic() < deadline, "the runtime process did not start the tenant"
            try:
                health = (await client.get("/health")).json()
                if [t["state"] for t in health["tenants"]] == ["running"]:
                    return process, url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def _wait_for_list(redis: Redis, key: str, expected: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not expected <= set(await redis.lrange(key, 0, -1)):
        assert time.monotonic() < deadline, f"{expected} not all recorded"
        await asyncio.sleep(0.05)


async def test_kill_9_between_commit_and_delivery_then_restart_delivers_once_per_group(
    tenantry, tenantry_database_url, tenantry_redis_url, bot_api
):
    tenantry.add_tenant("filin", features={"alpha": {}, "beta": {}})
    handled_list = f"crash-{tenantry.run_id}:handled"
    queue = f"crash-{tenantry.run_id}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        "TENANTRY_DATABASE_URL": tenantry_database_url,
        "TENANTRY_REDIS_URL": tenantry_redis_url,
        "TENANTRY_BOT_API_URL": bot_api.base_url,
        "TENANTRY_TENANTS_DIR": str(tenantry.tenants_dir),
        "TENANTRY_DATA_DIR": str(tenantry.data_dir),
        "TENANTRY_SECRET_KEY": tenantry.secret_key,
        "TENANTRY_CONTROL_SCHEMA": tenantry.control_schema,
        "TENANTRY_QUEUE": queue,
        "TENANTRY_WATCH": "0",
        "TENANTRY_EVENTS_CLAIM_IDLE_SECONDS": "1",
        "CRASH_LIST": handled_list,
    }
    redis = Redis.from_url(tenantry_redis_url, decode_responses=True)
    first = second = None
    try:
        first, url = await _spawn(tenantry, {**env, "CRASH_HANG": "1"})
        headers = tenantry.api_headers("filin")
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            hang = await client.post("/api/tenants/filin/alpha/publish", json={"title": "hang"})
            quiet = await client.post("/api/tenants/filin/alpha/publish", json={"title": "quiet"})
        assert hang.status_code == quiet.status_code == 201
        hang_id, quiet_id = hang.json()["id"], quiet.json()["id"]
        # beta handled both; alpha holds "hang" (and so never read "quiet") when the process dies.
        await _wait_for_list(redis, handled_list, {f"beta:{hang_id}", f"beta:{quiet_id}"})
        assert await redis.lrange(handled_list, 0, -1) == [f"beta:{hang_id}", f"beta:{quiet_id}"]
        first.send_signal(signal.SIGKILL)
        await first.wait()

        second, _ = await _spawn(tenantry, env)
        await _wait_for_list(redis, handled_list, {f"alpha:{hang_id}", f"alpha:{quiet_id}"})
        await asyncio.sleep(1.5)  # longer than the claim delay: room for a wrong second delivery
        handled = await redis.lrange(handled_list, 0, -1)
        assert sorted(handled) == sorted(
            [f"beta:{hang_id}", f"beta:{quiet_id}", f"alpha:{hang_id}", f"alpha:{quiet_id}"]
        )
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        keys = [key async for key in redis.scan_iter(f"{queue}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
