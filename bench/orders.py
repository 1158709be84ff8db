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
to its consumers (the notifications sent), at most ``--events-timeout``
seconds (0: not waited for; the kit sends one notice a second per chat and
every order notifies the same partner, so N orders take about N seconds).
The baseline's is its own process's CPU over its run.

Usage::

    TENANTRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    TENANTRY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/orders.py --orders 500 --concurrency 10 2>/dev/null

Without the env vars, embedded PostgreSQL and Redis are started.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_servers, creates_report, raw_inserts, served_tenant

if TYPE_CHECKING:
    import asyncpg

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


async def insert_order(
    conn: asyncpg.Connection, customer_id: int, schema: str, item_id: int
) -> None:
    """The baseline's order (:func:`_common.raw_inserts`): the same three rows, raw."""
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


async def bench(
    database_url: str, redis_url: str, count: int, concurrency: int, events_timeout: float
) -> None:
    """Run the API side, then the baseline, and print the report."""
    async with served_tenant(
        database_url, redis_url, "benchshop", features={"orders": SETTINGS}
    ) as served:
        schema, harness = served.schema, served.harness
        [item] = await harness.sql(f'SELECT id FROM "{schema}".items')
        url = "/api/tenants/benchshop/orders/orders"
        headers = harness.api_headers("benchshop")
        await served.warm_up(order_request(item["id"], i, url, headers) for i in range(WARM_UP))
        requests = [order_request(item["id"], 1000 + i, url, headers) for i in range(count)]
        api = await served.creates(requests, concurrency, events_timeout)
        baseline = await served.baseline(
            raw_inserts, database_url, served.pool_size, concurrency, insert_order,
            range(900000, 900000 + WARM_UP), range(200000, 200000 + count), schema, item["id"],
        )  # fmt: skip
        [total] = await harness.sql(f'SELECT count(*) AS n FROM "{schema}".orders')
        assert total["n"] == 2 * (count + WARM_UP), total
    if api["errors"]:
        raise SystemExit(f"API errors: {api['errors']}")
    heading = (
        f"orders: {count} per side, concurrency {concurrency}; server, load generator and "
        f"baseline in processes of their own (uvloop, GC freeze)"
    )
    sides = [("HTTP API (full create path)", api), ("raw asyncpg (same 3 rows, 1 tx)", baseline)]
    print("\n".join(creates_report(heading, "order", count, sides, "notifications sent")))


def main() -> None:
    """Parse arguments, start servers if needed and run the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per side (default 500)")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="requests in flight (default 10)"
    )
    parser.add_argument(
        "--events-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the events after the creates (default 120; 0: no wait)",
    )
    args = parser.parse_args()
    import uvloop

    with bench_servers() as (database_url, redis_url):
        uvloop.run(
            bench(database_url, redis_url, args.orders, args.concurrency, args.events_timeout)
        )


if __name__ == "__main__":
    main()
