"""Orders created per second: through the HTTP API vs raw asyncpg inserts of the same rows.

Both sides run in one process against the same PostgreSQL, one after the other,
with the same concurrency. The API side is the whole path a WebApp order takes
(auth, Idempotency-Key in Redis, validation, pricing from the database with the
items share-locked, order + line + history inserts, the ``orders.created`` event
and the partner's Telegram notification to a local Bot API stand-in). The raw
side inserts the same three rows per order in one transaction and nothing else.

Usage::

    TENANTRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    TENANTRY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
    .venv/bin/python bench/orders.py --orders 500 --concurrency 10

Without the env vars, embedded PostgreSQL and Redis are started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg

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


async def _run_concurrently(count: int, concurrency: int, one: object) -> float:
    """Run ``one(i)`` for i in range(count) with ``concurrency`` workers; return seconds."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await one(index)  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(database_url: str, redis_url: str, count: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        async with BotAPIStandIn() as bot_api:
            harness = TenantryHarness(
                Path(folder), database_url, redis_url, bot_api, settle_events=False
            )
            # One API key creates every order: a limit it never reaches keeps the
            # rate-limit check (one Redis script call) in the measured path.
            config = harness.add_tenant(
                "benchshop", features={"orders": SETTINGS}, limits={"api_writes": "1000000/minute"}
            )
            schema = config["storage"]["schema"]
            try:
                await harness.start(watch=False)
                await harness.wait_state("benchshop", "running")
                [item] = await harness.sql(f'SELECT id FROM "{schema}".items')
                url = "/api/tenants/benchshop/orders/orders"
                headers = harness.api_headers("benchshop")

                async def api_order(index: int) -> None:
                    body = {
                        "store_id": "bakery",
                        "type": "pickup",
                        "phone": "+79990001122",
                        "customer_id": 100000 + index,
                        "customer_name": "Bench",
                        "items": [{"item_id": item["id"], "quantity": 2}],
                    }
                    response = await harness.client.post(
                        url, json=body, headers={**headers, "Idempotency-Key": f"bench-{index}"}
                    )
                    assert response.status_code == 201, response.text

                await _run_concurrently(
                    20, concurrency, api_order
                )  # warm-up (pool, prepared statements)
                api_seconds = await _run_concurrently(
                    count, concurrency, lambda i: api_order(1000 + i)
                )

                pool = await asyncpg.create_pool(
                    database_url, min_size=concurrency, max_size=concurrency
                )

                async def raw_order(index: int) -> None:
                    async with pool.acquire() as conn, conn.transaction():
                        order_id = await conn.fetchval(
                            f'INSERT INTO "{schema}".orders (store_id, customer_id, customer_name, type, status,'
                            " phone, subtotal, delivery_fee, total, currency)"
                            " VALUES ('bakery', $1, 'Bench', 'pickup', 'pending', '+79990001122', 24000, 0, 24000, 'RUB')"
                            " RETURNING id",
                            200000 + index,
                        )
                        await conn.execute(
                            f'INSERT INTO "{schema}".order_items (order_id, item_id, name, unit_price, quantity, line_total)'
                            " VALUES ($1, $2, 'Baguette', 12000, 2, 24000)",
                            order_id,
                            item["id"],
                        )
                        await conn.execute(
                            f'INSERT INTO "{schema}".order_history (order_id, from_status, to_status, actor_id, role, reason)'
                            " VALUES ($1, NULL, 'pending', $2, 'admin', 'created')",
                            order_id,
                            200000 + index,
                        )

                await _run_concurrently(20, concurrency, lambda i: raw_order(900000 + i))
                raw_seconds = await _run_concurrently(count, concurrency, raw_order)
                await pool.close()
                [total] = await harness.sql(f'SELECT count(*) AS n FROM "{schema}".orders')
                assert total["n"] == 2 * (count + 20)
            finally:
                await harness.stop()
                await harness.cleanup()
    api_rate, raw_rate = count / api_seconds, count / raw_seconds
    print(f"orders: {count}, concurrency: {concurrency}")
    print(f"{'path':<40}{'orders/s':>12}{'ms/order':>12}")
    print(
        f"{'HTTP API (full create path)':<40}{api_rate:>12.1f}{1000 * api_seconds / count:>12.2f}"
    )
    print(
        f"{'raw asyncpg (same 3 rows, 1 tx)':<40}{raw_rate:>12.1f}{1000 * raw_seconds / count:>12.2f}"
    )
    print(
        f"raw / API ratio: {raw_rate / api_rate:.1f}x  (API reaches {100 * api_rate / raw_rate:.0f}% of raw inserts)"
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
    try:
        asyncio.run(bench(database_url, redis_url, args.orders, args.concurrency))
    finally:
        if servers is not None:
            servers.close()


if __name__ == "__main__":
    main()
