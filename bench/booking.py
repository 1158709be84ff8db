"""Booking benchmarks: availability latency at a fixed rate, and creates/s API vs raw asyncpg.

One run, one process, one PostgreSQL and Redis:

1. ``GET /availability`` sent open-loop at ``--rate`` requests per second for
   ``--seconds`` (each request starts at its scheduled moment whether or not
   earlier ones finished, and its latency counts from that moment, so a slow
   server cannot hide queueing). Prints p50/p90/p99 in ms.
2. Bookings created per second through ``POST /bookings`` (API-key auth,
   Idempotency-Key in Redis, validation, availability read, booking + hold +
   two history rows in one transaction, ``booking.created`` event with the
   admin's Telegram notice to a local Bot API stand-in, reminder queued in
   saq) versus raw asyncpg inserts of the same four rows per booking in one
   transaction through the *same* pool (the runtime's), with the same
   concurrency. Prints both rates and the ratio.

Usage::

    TENANTRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    TENANTRY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
    .venv/bin/python bench/booking.py --bookings 400 --concurrency 10 --rate 50 --seconds 10 2>/dev/null

Without the env vars, embedded PostgreSQL and Redis are started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (0 < share <= 1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


async def run_concurrently(count: int, concurrency: int, one: object) -> float:
    """Run ``one(i)`` for i in range(count) with ``concurrency`` workers; return seconds."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await one(index)  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(
    database_url: str, redis_url: str, bookings: int, concurrency: int, rate: float, seconds: float
) -> None:
    """Run both measurements and print the report."""
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        async with BotAPIStandIn() as bot_api:
            harness = TenantryHarness(
                Path(folder), database_url, redis_url, bot_api, settle_events=False
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
            try:
                await harness.start(watch=False)
                await harness.wait_state("benchfilin", "running")
                headers = harness.api_headers("benchfilin")
                base = "/api/tenants/benchfilin/booking"

                # -- creates through the API (days 1.. onwards)
                failures: list[str] = []

                async def api_create(index: int) -> None:
                    table, start = slot(index, first_day=1)
                    body = {
                        "starts_at": start.isoformat(),
                        "customer_name": f"Guest {index}",
                        "phone": "+79990001122",
                        "party_size": 2,
                        "table": table,
                    }
                    response = await harness.client.post(
                        f"{base}/bookings",
                        json=body,
                        headers={**headers, "Idempotency-Key": f"bench-{index}"},
                    )
                    if response.status_code != 201:
                        failures.append(response.text)

                api_seconds = await run_concurrently(bookings, concurrency, api_create)
                if failures:
                    raise SystemExit(f"{len(failures)} API creates failed, first: {failures[0]}")

                # -- the same rows through the runtime's own pool (days after the API's)
                pool = harness.runtime.pool
                ids = {
                    r["code"]: r["id"]
                    for r in await harness.sql(f'SELECT code, id FROM "{schema}".resources')
                }
                raw_first_day = 1 + bookings // (TABLES * 24) + 1

                async def raw_create(index: int) -> None:
                    table, start = slot(index, first_day=raw_first_day)
                    end = start + timedelta(minutes=60)
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                        booking_id = await conn.fetchval(
                            RAW_INSERT_BOOKING, f"Guest {index}", start, end
                        )
                        await conn.execute(RAW_INSERT_HOLD, ids[table], booking_id, start, end)
                        await conn.execute(RAW_INSERT_HISTORY, booking_id)
                        await conn.execute(RAW_CONFIRM, booking_id)

                raw_seconds = await run_concurrently(bookings, concurrency, raw_create)

                # -- availability at a fixed rate, on the busiest day
                busy_day = slot(0, first_day=1)[1].date().isoformat()
                latencies: list[float] = []
                statuses: list[int] = []

                async def availability_at(moment: float) -> None:
                    await asyncio.sleep(max(0.0, moment - time.perf_counter()))
                    response = await harness.client.get(
                        f"{base}/availability",
                        params={"date": busy_day, "party_size": 2},
                        headers=headers,
                    )
                    latencies.append((time.perf_counter() - moment) * 1000)
                    statuses.append(response.status_code)

                total = int(rate * seconds)
                origin = time.perf_counter() + 0.1
                await asyncio.gather(*(availability_at(origin + i / rate) for i in range(total)))
                achieved = total / (time.perf_counter() - origin)
            finally:
                await harness.stop()
                await harness.cleanup()

    ok = sum(1 for s in statuses if s == 200)
    print(
        f"availability: {total} requests at {rate:g}/s open-loop (achieved {achieved:.1f}/s), {ok} ok"
    )
    print(f"  latency ms  p50 {percentile(latencies, 0.5):7.2f}   p90 {percentile(latencies, 0.9):7.2f}"
          f"   p99 {percentile(latencies, 0.99):7.2f}   mean {statistics.fmean(latencies):7.2f}")  # fmt: skip
    api_rate = bookings / api_seconds
    raw_rate = bookings / raw_seconds
    print(f"creates: {bookings} bookings, concurrency {concurrency}")
    print(f"  {'path':<44}{'bookings/s':>12}{'ms/booking':>12}")
    print(f"  {'HTTP API (full create path)':<44}{api_rate:>12.1f}{1000 / api_rate:>12.2f}")
    print(
        f"  {'raw asyncpg, same 4 rows, 1 tx, same pool':<44}{raw_rate:>12.1f}{1000 / raw_rate:>12.2f}"
    )
    print(
        f"  raw / API ratio: {raw_rate / api_rate:.1f}x  (API reaches {100 * api_rate / raw_rate:.0f}% of raw inserts)"
    )


def main() -> None:
    """Parse arguments, pick the servers, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="availability requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="availability run length")
    args = parser.parse_args()
    if args.bookings > TABLES * 24 * 25:
        raise SystemExit(f"--bookings at most {TABLES * 24 * 25}")
    database_url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    redis_url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if database_url and redis_url:
        asyncio.run(
            bench(database_url, redis_url, args.bookings, args.concurrency, args.rate, args.seconds)
        )
        return
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-servers-") as folder:
        try:
            database_url = database_url or servers.start_postgres(Path(folder) / "pg")
            redis_url = redis_url or servers.start_redis(Path(folder) / "redis.db")
            asyncio.run(
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
