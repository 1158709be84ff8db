"""Booking benchmarks: availability latency at a fixed rate, and creates/s API vs raw asyncpg.

Every side has a process of its own, against the same PostgreSQL:

* the **server**: this process runs the runtime (uvicorn on uvloop, the
  runtime's garbage-collector policy ``TENANTRY_GC_FREEZE`` on, as ``tenantry
  run`` has it), and nothing else while it is measured;
* the **load generator**: a spawned process (uvloop, aiohttp, the same GC policy);
* the **baseline**: a spawned process (uvloop, the same GC policy) with its own
  asyncpg pool of as many connections as the tenant may hold.

Measured, in this order:

1. Bookings created per second through ``POST /bookings``, closed loop,
   ``--concurrency`` in flight: API-key auth, Idempotency-Key in Redis, the
   rate-limit check, validation, the free-table read, booking + hold + two
   history rows in one transaction with the ``booking.created`` event (the
   admin's Telegram notice is sent by the event consumer in the server, to a
   Bot API stand-in process). Server CPU per booking is the server process's
   user + system time (``os.times()``) from the first request to the last
   answer, and until every event was delivered ("with events").
2. ``GET /availability`` of the busiest day sent open-loop at ``--rate``
   requests per second for ``--seconds`` (each request starts at its
   scheduled moment whether or not earlier ones finished, and its latency
   counts from that moment, so a slow server cannot hide queueing).
3. The baseline: raw asyncpg inserts of the same four rows per booking
   (booking, hold, two history rows, plus the confirm update) in one
   transaction, ``--concurrency`` in flight, nothing else; its CPU is its
   own process's.

Usage::

    TENANTRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    TENANTRY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/booking.py --bookings 400 --concurrency 10 --rate 50 --seconds 10 2>/dev/null

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
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

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

TABLES = 40
TZ = ZoneInfo("Europe/Moscow")
SETTINGS = {
    "kind": "tables",
    "tables": [{"id": f"t{n:02d}", "seats": 4} for n in range(TABLES)],
    "opening_hours": dict.fromkeys(
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "00:00-24:00"
    ),
    "slot_step_minutes": 60,
    "stay_minutes": 60,
    "min_notice_minutes": 0,
    "days_ahead": 60,
}
RAW_INSERT_BOOKING = """
INSERT INTO bookings (status, user_id, customer_name, phone, party_size, service_code, starts_at, ends_at,
    buffer_before_minutes, buffer_after_minutes, price, comment, source)
VALUES ('pending', NULL, $1, '+79990001122', 2, NULL, $2, $3, 0, 0, 0, '', 'api') RETURNING id
"""
RAW_INSERT_HOLD = "INSERT INTO resource_holds (resource_id, booking_id, starts_at, ends_at) VALUES ($1, $2, $3, $4)"
RAW_INSERT_HISTORY = """
INSERT INTO booking_history (booking_id, from_status, to_status, actor_role, actor_id, comment)
VALUES ($1, NULL, 'pending', 'admin', NULL, ''), ($1, 'pending', 'confirmed', 'system', NULL, 'auto-confirmed')
"""
RAW_CONFIRM = "UPDATE bookings SET status = 'confirmed', updated_at = now() WHERE id = $1"
WARM_UP = 20


def slot(index: int, first_day: int) -> tuple[str, datetime]:
    """The ``index``-th distinct (table, start) pair, starting ``first_day`` days from today."""
    table = index % TABLES
    hour = (index // TABLES) % 24
    day = first_day + index // (TABLES * 24)
    today = datetime.now(TZ).date()
    moment = datetime.combine(
        today + timedelta(days=day), datetime.min.time(), tzinfo=TZ
    ) + timedelta(hours=hour)
    return f"t{table:02d}", moment


async def raw_bookings(
    go: Callable[[], Awaitable[None]],
    database_url: str,
    schema: str,
    resource_ids: dict[str, int],
    first_day: int,
    count: int,
    concurrency: int,
    pool_size: int,
) -> dict[str, object]:
    """The baseline (a :class:`SpawnedRun` target): ``count`` bookings as raw statements."""
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
    latencies: list[float] = []

    async def book(index: int) -> None:
        sent = time.perf_counter()
        table, start = slot(index, first_day=first_day)
        end = start + timedelta(minutes=60)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            booking_id = await conn.fetchval(RAW_INSERT_BOOKING, f"Guest {index}", start, end)
            await conn.execute(RAW_INSERT_HOLD, resource_ids[table], booking_id, start, end)
            await conn.execute(RAW_INSERT_HISTORY, booking_id)
            await conn.execute(RAW_CONFIRM, booking_id)
        latencies.append(time.perf_counter() - sent)

    async def run(indexes: range) -> float:
        pending = iter(indexes)

        async def worker() -> None:
            for index in pending:
                await book(index)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    await run(range(count, count + WARM_UP))  # prepared statements, connections
    latencies.clear()
    await go()
    cpu = own_cpu_seconds()
    seconds = await run(range(count))
    cpu = own_cpu_seconds() - cpu
    await pool.close()
    return {"seconds": seconds, "latencies": latencies, "errors": {}, "cpu_seconds": cpu}


def booking_request(index: int, base: str, headers: dict[str, str]) -> tuple:
    """The ``index``-th ``POST /bookings`` (days 1.. onwards) for :func:`http_load`."""
    table, start = slot(index, first_day=1)
    body = {
        "starts_at": start.isoformat(),
        "customer_name": f"Guest {index}",
        "phone": "+79990001122",
        "party_size": 2,
        "table": table,
    }
    return (
        "POST",
        f"{base}/bookings",
        msgspec.json.encode(body),
        {**headers, "Content-Type": "application/json", "Idempotency-Key": f"bench-{index}"},
    )


async def bench(
    database_url: str, redis_url: str, bookings: int, concurrency: int, rate: float, seconds: float
) -> None:
    """Run the three measurements and print the report."""
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
        # One API key creates every booking: a limit it never reaches keeps the
        # rate-limit check (one Redis script call) in the measured path.
        config = harness.add_tenant(
            "benchfilin",
            timezone="Europe/Moscow",
            features={"booking": SETTINGS},
            limits={"api_writes": "1000000/minute"},
        )
        schema = config["storage"]["schema"]
        spawned: list[SpawnedRun] = []
        try:
            await harness.start(watch=False, bot_api_url=f"http://127.0.0.1:{port}", gc_freeze=True)
            await harness.wait_state("benchfilin", "running")
            tenant = harness.runtime.registry.get("benchfilin")
            headers = harness.api_headers("benchfilin")
            base = "/api/tenants/benchfilin/booking"
            # Warm-up on day 59, after both sides' days: prepared statements, caches.
            warm_first = TABLES * 24 * 58
            for index in range(warm_first, warm_first + WARM_UP):
                _, path, body, request_headers = booking_request(index, base, headers)
                response = await harness.client.post(path, content=body, headers=request_headers)
                assert response.status_code == 201, response.text
            await tenant.events_delivered(timeout=60)

            # -- creates through the API
            requests = [booking_request(index, base, headers) for index in range(bookings)]
            load = SpawnedRun(http_load, harness.url, requests, concurrency, None, 201)
            spawned.append(load)
            await load.ready()
            cpu = own_cpu_seconds()
            api = await load.run()
            api["cpu_seconds"] = own_cpu_seconds() - cpu
            drain_started = time.perf_counter()
            delivered = await tenant.events_delivered(timeout=120)
            api["cpu_with_events"] = own_cpu_seconds() - cpu
            drain_seconds = time.perf_counter() - drain_started

            # -- availability at a fixed rate, on the busiest day
            busy_day = slot(0, first_day=1)[1].date().isoformat()
            query = urlencode({"date": busy_day, "party_size": 2})
            total = int(rate * seconds)
            reads = [("GET", f"{base}/availability?{query}", b"", headers)] * total
            load = SpawnedRun(http_load, harness.url, reads, concurrency, rate, 200)
            spawned.append(load)
            await load.ready()
            cpu = own_cpu_seconds()
            availability = await load.run()
            availability_cpu = own_cpu_seconds() - cpu

            ids = {
                r["code"]: r["id"]
                for r in await harness.sql(f'SELECT code, id FROM "{schema}".resources')
            }
            pool_size = tenant.db.max_connections
            await harness.stop()  # the baseline runs on a quiet machine too

            # -- the same rows, raw (days after the API's)
            raw_first_day = 1 + bookings // (TABLES * 24) + 1
            raw = SpawnedRun(
                raw_bookings, database_url, schema, ids, raw_first_day, bookings, concurrency,
                pool_size,
            )  # fmt: skip
            spawned.append(raw)
            await raw.ready()
            baseline = await raw.run()
        finally:
            for run in spawned:
                run.stop()
            await harness.stop()
            await harness.cleanup()
            await bot_api.stop()
    if api["errors"]:
        raise SystemExit(f"API create errors: {api['errors']}")

    latencies = [1000 * s for s in availability["latencies"]]
    ok = total - sum(availability["errors"].values())
    print(
        f"availability: {total} requests at {rate:g}/s open-loop "
        f"(achieved {total / availability['seconds']:.1f}/s), {ok} ok, "
        f"server CPU {1000 * availability_cpu / total:.2f} ms/request"
    )
    print(
        f"  latency ms  p50 {nearest_rank(latencies, 50):7.2f}   p90 {nearest_rank(latencies, 90):7.2f}"
        f"   p99 {nearest_rank(latencies, 99):7.2f}   mean {sum(latencies) / len(latencies):7.2f}"
    )
    print(
        f"creates: {bookings} bookings per side, concurrency {concurrency}; server, load "
        "generator and baseline in processes of their own (uvloop, GC freeze)"
    )
    rows = []
    for name, run in (
        ("HTTP API (full create path)", api),
        ("raw asyncpg, same 4 rows, 1 tx", baseline),
    ):
        latencies = [1000 * s for s in run["latencies"]]
        rows.append(
            [
                name,
                bookings / run["seconds"],
                nearest_rank(latencies, 50),
                nearest_rank(latencies, 99),
                1000 * run["cpu_seconds"] / bookings,
            ]
        )
    print(format_table(["path", "bookings/s", "p50 ms", "p99 ms", "server CPU ms/booking"], rows))
    api_rate, raw_rate = rows[0][1], rows[1][1]
    print(
        f"API / raw: {api_rate / raw_rate:.2f}x (API reaches {100 * api_rate / raw_rate:.0f}% of raw inserts)"
    )
    print(
        f"server CPU with the events delivered (notices sent): "
        f"{1000 * api['cpu_with_events'] / bookings:.2f} ms/booking "
        f"({drain_seconds:.2f} s after the last answer, delivered: {delivered})"
    )


def main() -> None:
    """Parse arguments, pick the servers, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="availability requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="availability run length")
    args = parser.parse_args()
    if args.bookings > TABLES * 24 * 24:
        raise SystemExit(f"--bookings at most {TABLES * 24 * 24}")
    import uvloop

    database_url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    redis_url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if database_url and redis_url:
        uvloop.run(
            bench(database_url, redis_url, args.bookings, args.concurrency, args.rate, args.seconds)
        )
        return
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-servers-") as folder:
        try:
            database_url = database_url or servers.start_postgres(Path(folder) / "pg")
            redis_url = redis_url or servers.start_redis(Path(folder) / "redis.db")
            uvloop.run(
                bench(
                    database_url,
                    redis_url,
                    args.bookings,
                    args.concurrency,
                    args.rate,
                    args.seconds,
                )
            )
        finally:
            servers.close()


if __name__ == "__main__":
    main()
