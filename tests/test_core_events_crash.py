"""Kill -9 a runtime process between an event's commit and its delivery; a restart delivers it once per group.

Two crash windows: the event already in the stream and in a handler's
hands, and the event committed but still in the outbox (the relay could not
reach Redis yet). The restarted runtime has a consumer name of its own, so
what the dead one held comes back through ``XAUTOCLAIM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from runtime_procs import kill_all, runtime_env, spawn_runtime


async def _wait_for_list(redis: Redis, key: str, expected: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not expected <= set(await redis.lrange(key, 0, -1)):
        assert time.monotonic() < deadline, f"{expected} not all recorded"
        await asyncio.sleep(0.05)


class RedisLine:
    """A TCP proxy in front of Redis that a test can cut, as a network failure would.

    After :meth:`cut`, open connections are dropped and new ones are closed
    as soon as they are accepted, so every Redis command of the process
    behind it fails with a connection error.

    Args:
        url: the real Redis (``redis://host:port/db``).
    """

    def __init__(self, url: str):
        parsed = urlsplit(url)
        self._target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self._path = parsed.path
        self._open = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; return the Redis URL to give the process."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._path}"

    def cut(self) -> None:
        """Drop every connection and refuse the next ones."""
        self._open = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        """Cut, and stop listening."""
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def _wait_acknowledged(redis, queue: str, group: str, timeout: float = 10.0) -> None:
    """Until ``group`` has no pending entry on any of ``queue``'s event streams."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pending = 0
        async for stream in redis.scan_iter(f"{queue}:events:*"):
            with contextlib.suppress(ResponseError):  # a stream without that group
                pending += (await redis.xpending(stream, group))["pending"]
        if pending == 0:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{group}: {pending} pending"
        await asyncio.sleep(0.02)


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
        # Handled is not yet finished (its marker and XACK follow the handler): kill only
        # once beta acknowledged both, so a second beta delivery would be the bug tested for.
        await _wait_acknowledged(redis, queue, "beta")
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


async def test_kill_9_with_the_event_still_in_the_outbox_then_restart_delivers_once_per_group(
    tenantry, tenantry_database_url, tenantry_redis_url, bot_api
):
    config = tenantry.add_tenant("filin", features={"alpha": {}, "beta": {}})
    outbox = f'SELECT event_id FROM "{config["storage"]["schema"]}".tenantry_outbox'
    handled_list = f"crash-{tenantry.run_id}:handled"
    queue = f"crash-{tenantry.run_id}"
    # The sweep every 30 s (the default) must not be what delivers: the wait
    # below is shorter, so only the restarted runtime's first sweep can.
    env = runtime_env(
        tenantry,
        tenantry_database_url,
        tenantry_redis_url,
        TENANTRY_EVENTS_CLAIM_IDLE_SECONDS="1",
        CRASH_LIST=handled_list,
    )
    redis = Redis.from_url(tenantry_redis_url, decode_responses=True)
    line = RedisLine(tenantry_redis_url)
    first = second = None
    try:
        first, url = await spawn_runtime({**env, "TENANTRY_REDIS_URL": await line.start()})
        line.cut()  # the relay can no longer reach the streams; PostgreSQL is fine
        async with httpx.AsyncClient(base_url=url, headers=tenantry.api_headers("filin")) as client:
            stuck = await client.post("/api/tenants/filin/alpha/publish", json={"title": "stuck"})
        assert stuck.status_code == 201, stuck.text  # committed
        stuck_id = stuck.json()["id"]
        await asyncio.sleep(1.0)  # the commit's notification woke the relay; its move failed
        assert await tenantry.sql(outbox) == [{"event_id": stuck_id}]
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert await redis.lrange(handled_list, 0, -1) == []

        second, _ = await spawn_runtime(env)
        await _wait_for_list(redis, handled_list, {f"alpha:{stuck_id}", f"beta:{stuck_id}"})
        await asyncio.sleep(1.5)  # longer than the claim delay: room for a wrong second delivery
        assert sorted(await redis.lrange(handled_list, 0, -1)) == [
            f"alpha:{stuck_id}",
            f"beta:{stuck_id}",
        ]
        assert await tenantry.sql(outbox) == []
    finally:
        await kill_all(first, second)
        await line.close()
        keys = [key async for key in redis.scan_iter(f"{queue}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
