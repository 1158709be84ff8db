"""Orders created per second: through the HTTP API vs raw asyncpg inserts of the same rows.

Every side has a process of its own, one after the other against the same
PostgreSQL, with the same concurrency:

* the **server**: this process runs the runtime (uvicorn on uvloop, the
  runtime's garbage-collector policy ``TENANTRY_GC_FREEZE`` on, as ``tenantry
  run`` has it), and nothing else while it is measured;
* the **load generator**: a spawned process (uvloop, aiohttp, the same GC
  policy) posting ``--orders`` creates, closed loop, ``--concurrency`` in
  flight. Each is the whole path a WebApp order takes (API-key auth,
  Idempotency-Key in Redis, the rate-limit check, validation, pricing from
  the database with the items share-locked, the per-customer cap, order +
  line + history inserts, the ``orders.created`` event); the partner's
  Telegram notification is sent by the event consumer in the server, to a
  Bot API stand-in process;
* the **baseline**: a spawned process (uvloop, the same GC policy) inserting
  the same three rows per order in one transaction through its own asyncpg
  pool of as many connections as the tenant may hold, ``--concurrency``
  transactions in flight, nothing else.

Server CPU per order is the server process's user + system time
(``os.times()``) from the first request to the last answer, divided by the
orders; "with events" goes on until every ``orders.created`` was delivered
to its consumers (the notifications sent). The baseline's is its own
process's CPU over its run.

Usage::

    TENANTRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    TENANTRY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/orders.py --orders 500 --concurrency 10 2>/dev/null

Without the env vars, embedded PostgreSQL and Redis are started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    Child,
    SpawnedRun,
    child_env,
    format_table,
    free_port,
    http_load,
    nearest_rank,
    own_cpu_seconds,
)

from core.testing.botapi import BotAPIStandIn
from core.testing.plugin import TenantryHarness

SETTINGS = {
    "expire_after_minutes": 0,
    "stores": [{"id": "bakery", "name": "Bakery", "partners": [7001], "pickup": True}],
    "categories": [{"id": "bread", "store": "bakery", "name": "Bread"}],
    "items": [
        {
            "sku": "baguette",
            "store": "bakery",
            "category": "bread",
            "name": "Baguette",
            "price": 12000,
        }
    ],
}
WARM_UP = 20


async def raw_orders(
    go: Callable[[], Awaitable[None]],
    database_url: str,
    schema: str,
    item_id: int,
    count: int,
    concurrency: int,
    pool_size: int,
) -> dict[str, object]:
    """The baseline (a :class:`SpawnedRun` target): ``count`` orders as three raw inserts each."""
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
    latencies: list[float] = []

    async def order(customer_id: int) -> None:
        sent = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            order_id = await conn.fetchval(
                f'INSERT INTO "{schema}".orders (store_id, customer_id, customer_name, type, status,'
                " phone, subtotal, delivery_fee, total, currency)"
                " VALUES ('bakery', $1, 'Bench', 'pickup', 'pending', '+79990001122', 24000, 0, 24000, 'RUB')"
                " RETURNING id",
                customer_id,
            )
            await conn.execute(
                f'INSERT INTO "{schema}".order_items (order_id, item_id, name, unit_price, quantity, line_total)'
                " VALUES ($1, $2, 'Baguette', 12000, 2, 24000)",
                order_id,
                item_id,
            )
            await conn.execute(
                f'INSERT INTO "{schema}".order_history (order_id, from_status, to_status, actor_id, role, reason)'
                " VALUES ($1, NULL, 'pending', $2, 'admin', 'created')",
                order_id,
                customer_id,
            )
        latencies.append(time.perf_counter() - sent)

    async def run(first: int, total: int) -> float:
        pending = iter(range(first, first + total))

        async def worker() -> None:
            for customer_id in pending:
                await order(customer_id)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    await run(900000, WARM_UP)  # prepared statements, connections
    latencies.clear()
    await go()
    cpu = own_cpu_seconds()
    seconds = await run(200000, count)
    cpu = own_cpu_seconds() - cpu
    await pool.close()
    return {"seconds": seconds, "latencies": latencies, "errors": {}, "cpu_seconds": cpu}


def order_request(item_id: int, index: int, url: str, headers: dict[str, str]) -> tuple:
    """One ``POST /orders`` as ``(method, path, body, headers)`` for :func:`http_load`."""
    body = {
        "store_id": "bakery",
        "type": "pickup",
        "phone": "+79990001122",
        "customer_id": 100000 + index,
        "customer_name": "Bench",
        "items": [{"item_id": item_id, "quantity": 2}],
    }
    return (
        "POST",
        url,
        msgspec.json.encode(body),
        {**headers, "Content-Type": "application/json", "Idempotency-Key": f"bench-{index}"},
    )


async def bench(database_url: str, redis_url: str, count: int, concurrency: int) -> None:
    """Run the API side, then the baseline, and print the report."""
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
        # One API key creates every order: a limit it never reaches keeps the
        # rate-limit check (one Redis script call) in the measured path.
        config = harness.add_tenant(
            "benchshop", features={"orders": SETTINGS}, limits={"api_writes": "1000000/minute"}
        )
        schema = config["storage"]["schema"]
        load = raw = None
        try:
            await harness.start(watch=False, bot_api_url=f"http://127.0.0.1:{port}", gc_freeze=True)
            await harness.wait_state("benchshop", "running")
            tenant = harness.runtime.registry.get("benchshop")
            [item] = await harness.sql(f'SELECT id FROM "{schema}".items')
            url = "/api/tenants/benchshop/orders/orders"
            headers = harness.api_headers("benchshop")
            for index in range(WARM_UP):  # prepared statements, connections, caches
                _, path, body, request_headers = order_request(item["id"], index, url, headers)
                response = await harness.client.post(path, content=body, headers=request_headers)
                assert response.status_code == 201, response.text
            await tenant.events_delivered(timeout=60)

            requests = [order_request(item["id"], 1000 + i, url, headers) for i in range(count)]
            load = SpawnedRun(http_load, harness.url, requests, concurrency, None, 201)
            await load.ready()
            cpu = own_cpu_seconds()
            api = await load.run()
            api["cpu_seconds"] = own_cpu_seconds() - cpu
            drain_started = time.perf_counter()
            delivered = await tenant.events_delivered(timeout=120)
            api["cpu_with_events"] = own_cpu_seconds() - cpu
            drain_seconds = time.perf_counter() - drain_started
            pool_size = tenant.db.max_connections
            await harness.stop()  # the baseline runs on a quiet machine too

            raw = SpawnedRun(
                raw_orders, database_url, schema, item["id"], count, concurrency, pool_size
            )
            await raw.ready()
            baseline = await raw.run()
            [total] = await harness.sql(f'SELECT count(*) AS n FROM "{schema}".orders')
            assert total["n"] == 2 * (count + WARM_UP), total
        finally:
            for spawned in (load, raw):
                if spawned is not None:
                    spawned.stop()
            await harness.stop()
            await harness.cleanup()
            await bot_api.stop()
    if api["errors"]:
        raise SystemExit(f"API errors: {api['errors']}")
    print(
        f"orders: {count} per side, concurrency {concurrency}; server, load generator and "
        f"baseline in processes of their own (uvloop, GC freeze)"
    )
    rows = []
    for name, run, cpu in (
        ("HTTP API (full create path)", api, api["cpu_seconds"]),
        ("raw asyncpg (same 3 rows, 1 tx)", baseline, baseline["cpu_seconds"]),
    ):
        latencies = [1000 * s for s in run["latencies"]]
        rows.append(
            [
                name,
                count / run["seconds"],
                nearest_rank(latencies, 50),
                nearest_rank(latencies, 99),
                1000 * cpu / count,
            ]
        )
    print(format_table(["path", "orders/s", "p50 ms", "p99 ms", "server CPU ms/order"], rows))
    api_rate, raw_rate = rows[0][1], rows[1][1]
    print(
        f"API / raw: {api_rate / raw_rate:.2f}x (API reaches {100 * api_rate / raw_rate:.0f}% of raw inserts)"
    )
    print(
        f"server CPU with the events delivered (notifications sent): "
        f"{1000 * api['cpu_with_events'] / count:.2f} ms/order "
        f"({drain_seconds:.2f} s after the last answer, delivered: {delivered})"
    )


def main() -> None:
    """Parse arguments, start servers if needed and run the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per side (default 500)")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="requests in flight (default 10)"
    )
    args = parser.parse_args()
    database_url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    redis_url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    servers = None
    if not (database_url and redis_url):
        from core.runtime.embedded import EmbeddedServers

        servers = EmbeddedServers()
        folder = Path(tempfile.mkdtemp(prefix="tenantry-bench-servers-"))
        database_url = database_url or servers.start_postgres(folder / "pg")
        redis_url = redis_url or servers.start_redis(folder / "redis.db")
    import uvloop

    try:
        uvloop.run(bench(database_url, redis_url, args.orders, args.concurrency))
    finally:
        if servers is not None:
            servers.close()


if __name__ == "__main__":
    main()
