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
   answer, and until every event was delivered ("with events"), at most
   ``--events-timeout`` seconds (0: not waited for; the admin's notices go
   one a second, so N bookings take about N seconds).
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
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_servers, creates_report, nearest_rank, raw_inserts, served_tenant

if TYPE_CHECKING:
    import asyncpg

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


async def insert_booking(
    conn: asyncpg.Connection,
    index: int,
    schema: str,
    resource_ids: dict[str, int],
    first_day: int,
) -> None:
    """The baseline's booking (:func:`_common.raw_inserts`): the same four rows and the confirm, raw."""
    table, start = slot(index, first_day=first_day)
    end = start + timedelta(minutes=60)
    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
    booking_id = await conn.fetchval(RAW_INSERT_BOOKING, f"Guest {index}", start, end)
    await conn.execute(RAW_INSERT_HOLD, resource_ids[table], booking_id, start, end)
    await conn.execute(RAW_INSERT_HISTORY, booking_id)
    await conn.execute(RAW_CONFIRM, booking_id)


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
    database_url: str,
    redis_url: str,
    bookings: int,
    concurrency: int,
    rate: float,
    seconds: float,
    events_timeout: float,
) -> None:
    """Run the three measurements and print the report."""
    async with served_tenant(
        database_url,
        redis_url,
        "benchfilin",
        timezone="Europe/Moscow",
        features={"booking": SETTINGS},
    ) as served:
        schema, harness = served.schema, served.harness
        headers = harness.api_headers("benchfilin")
        base = "/api/tenants/benchfilin/booking"
        # Warm-up on day 59, after both sides' days: prepared statements, caches.
        warm_first = TABLES * 24 * 58
        await served.warm_up(
            booking_request(index, base, headers)
            for index in range(warm_first, warm_first + WARM_UP)
        )

        # -- creates through the API
        requests = [booking_request(index, base, headers) for index in range(bookings)]
        api = await served.creates(requests, concurrency, events_timeout)

        # -- availability at a fixed rate, on the busiest day
        busy_day = slot(0, first_day=1)[1].date().isoformat()
        query = urlencode({"date": busy_day, "party_size": 2})
        total = int(rate * seconds)
        reads = [("GET", f"{base}/availability?{query}", b"", headers)] * total
        availability = await served.load(reads, concurrency, rate, 200)

        ids = {
            r["code"]: r["id"]
            for r in await harness.sql(f'SELECT code, id FROM "{schema}".resources')
        }
        # -- the same rows, raw (days after the API's)
        raw_first_day = 1 + bookings // (TABLES * 24) + 1
        baseline = await served.baseline(
            raw_inserts, database_url, served.pool_size, concurrency, insert_booking,
            range(bookings, bookings + WARM_UP), range(bookings), schema, ids, raw_first_day,
        )  # fmt: skip
    if api["errors"]:
        raise SystemExit(f"API create errors: {api['errors']}")

    latencies = [1000 * s for s in availability["latencies"]]
    ok = total - sum(availability["errors"].values())
    print(
        f"availability: {total} requests at {rate:g}/s open-loop "
        f"(achieved {total / availability['seconds']:.1f}/s), {ok} ok, "
        f"server CPU {1000 * availability['cpu_seconds'] / total:.2f} ms/request"
    )
    print(
        f"  latency ms  p50 {nearest_rank(latencies, 50):7.2f}   p90 {nearest_rank(latencies, 90):7.2f}"
        f"   p99 {nearest_rank(latencies, 99):7.2f}   mean {sum(latencies) / len(latencies):7.2f}"
    )
    heading = (
        f"creates: {bookings} bookings per side, concurrency {concurrency}; server, load "
        "generator and baseline in processes of their own (uvloop, GC freeze)"
    )
    sides = [("HTTP API (full create path)", api), ("raw asyncpg, same 4 rows, 1 tx", baseline)]
    print("\n".join(creates_report(heading, "booking", bookings, sides, "notices sent")))


def main() -> None:
    """Parse arguments, pick the servers, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="availability requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="availability run length")
    parser.add_argument(
        "--events-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the events after the creates (default 120; 0: no wait)",
    )
    args = parser.parse_args()
    if args.bookings > TABLES * 24 * 24:
        raise SystemExit(f"--bookings at most {TABLES * 24 * 24}")
    import uvloop

    with bench_servers() as (database_url, redis_url):
        run = bench(
            database_url, redis_url, args.bookings, args.concurrency, args.rate, args.seconds,
            args.events_timeout,
        )  # fmt: skip
        uvloop.run(run)


if __name__ == "__main__":
    main()
