"""Kill -9 a runtime process between an event's commit and its delivery; a restart delivers it once per group."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
from redis.asyncio import Redis
from runtime_procs import kill_all, runtime_env, spawn_runtime


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
    env = runtime_env(
        tenantry,
        tenantry_database_url,
        tenantry_redis_url,
        TENANTRY_EVENTS_CLAIM_IDLE_SECONDS="1",
        CRASH_LIST=handled_list,
    )
    redis = Redis.from_url(tenantry_redis_url, decode_responses=True)
    first = second = None
    try:
        first, url = await spawn_runtime({**env, "CRASH_HANG": "1"})
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

        second, _ = await spawn_runtime(env)
        await _wait_for_list(redis, handled_list, {f"alpha:{hang_id}", f"alpha:{quiet_id}"})
        await asyncio.sleep(1.5)  # longer than the claim delay: room for a wrong second delivery
        handled = await redis.lrange(handled_list, 0, -1)
        assert sorted(handled) == sorted(
            [f"beta:{hang_id}", f"beta:{quiet_id}", f"alpha:{hang_id}", f"alpha:{quiet_id}"]
        )
    finally:
        await kill_all(first, second)
        keys = [key async for key in redis.scan_iter(f"{queue}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
