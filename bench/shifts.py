"""Shifts: open + close through the HTTP API vs raw asyncpg inserts, and the month report.

Three measurements in one run, against the same PostgreSQL:

1. **API**: per shift, ``POST /shifts`` (open) then ``POST /shifts/{id}/close``
   with the sales: auth, rate limit, the machine, the pay computed
   (:func:`plugins.shifts.service.commission.shift_pay`), shift + bonuses +
   two history rows, the ``shifts.opened``/``shifts.closed`` events through
   the outbox. Latency p50/p99 of the pair and shifts per second.
2. **raw asyncpg**: the same rows (shift with its pay, history) inserted in
   one transaction per shift, nothing else.
3. **month report**: 1,000 employees with 30 counted shifts each (30,000
   rows written directly), the report's one aggregate query
   (:data:`plugins.shifts.repository.MONTH_REPORT`), median and p99 of
   repeated runs, and the same through ``GET /reports/{month}``.

Usage::

    TENANTRY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    TENANTRY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
    .venv/bin/python bench/shifts.py --shifts 300 --concurrency 10

Without the env vars, embedded PostgreSQL and Redis are started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from core.testing.botapi import BotAPIStandIn
from core.testing.plugin import TenantryHarness

SETTINGS = {
    "commission": {
        "mode": "progressive",
        "rates": [
            {"from": 0, "to": 3000000, "percent": 3},
            {"from": 3000000, "to": 6000000, "percent": 5},
            {"from": 6000000, "percent": 7},
        ],
    },
    "hourly_rates": {"staff": 25000},
    "bonuses": [{"id": "big", "name": "Big", "percent": 1, "min_sales": 5000000}],
}
EMPLOYEES = 1000
SHIFTS_EACH = 30
MONTH = date(2026, 11, 1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_concurrently(count: int, concurrency: int, one: object) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await one(index)  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(
    database_url: str, redis_url: str, count: int, concurrency: int, rounds: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        async with BotAPIStandIn() as bot_api:
            harness = TenantryHarness(
                Path(folder), database_url, redis_url, bot_api, settle_events=False
            )
            config = harness.add_tenant(
                "benchcrew", features={"shifts": SETTINGS}, limits={"api_writes": "1000000/minute"}
            )
            schema = config["storage"]["schema"]
            try:
                await harness.start(watch=False)
                await harness.wait_state("benchcrew", "running")
                base = "/api/tenants/benchcrew/shifts"
                headers = harness.api_headers("benchcrew")
                pool = await asyncpg.create_pool(
                    database_url, min_size=1, max_size=max(2, concurrency)
                )
                async with pool.acquire() as conn:
                    # One employee per concurrent shift (an employee has one open shift at a time).
                    ids = [
                        r["id"]
                        for r in await conn.fetch(
                            f'INSERT INTO "{schema}".employees (name, role)'
                            " SELECT 'Bench ' || n, 'staff' FROM generate_series(1, $1) n RETURNING id",
                            EMPLOYEES,
                        )
                    ]
                latencies: list[float] = []

                async def api_shift(index: int) -> None:
                    employee = ids[index % len(ids)]
                    started = time.perf_counter()
                    opened = await harness.client.post(
                        f"{base}/shifts", json={"employee_id": employee}, headers=headers
                    )
                    assert opened.status_code == 201, opened.text
                    closed = await harness.client.post(
                        f"{base}/shifts/{opened.json()['id']}/close",
                        json={"sales_total": 4000000 + index},
                        headers=headers,
                    )
                    assert closed.status_code == 200, closed.text
                    latencies.append(time.perf_counter() - started)

                await run_concurrently(20, concurrency, api_shift)  # warm-up
                latencies.clear()
                api_seconds = await run_concurrently(
                    count, concurrency, lambda i: api_shift(20 + i)
                )

                async def raw_shift(index: int) -> None:
                    now = datetime.now(UTC)
                    async with pool.acquire() as conn, conn.transaction():
                        shift_id = await conn.fetchval(
                            f'INSERT INTO "{schema}".shifts (employee_id, status, opened_at, closed_at,'
                            " local_date, worked_seconds, sales, sales_total, commission_base, rate_bp,"
                            " base_pay, commission, bonus_total, total, currency)"
                            " VALUES ($1, 'submitted', $2, $2, $3, 0, '{\"total\": 4000000}', 4000000,"
                            " 4000000, 500, 0, 140000, 0, 140000, 'RUB') RETURNING id",
                            ids[index % len(ids)],
                            now,
                            now.date(),
                        )
                        await conn.executemany(
                            f'INSERT INTO "{schema}".shift_history (shift_id, from_status, to_status, role)'
                            " VALUES ($1, $2, $3, 'admin')",
                            [(shift_id, None, "open"), (shift_id, "open", "submitted")],
                        )

                await run_concurrently(20, concurrency, raw_shift)
                raw_seconds = await run_concurrently(count, concurrency, raw_shift)

                # The month: 1,000 employees x 30 approved shifts in November.
                async with pool.acquire() as conn:
                    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
                    rows = []
                    for employee in ids:
                        for day in range(SHIFTS_EACH):
                            opened = start + timedelta(days=day)
                            sales = 3_000_000 + day * 1000
                            rows.append(
                                (
                                    employee, "approved", opened, opened + timedelta(hours=8),
                                    opened.date(), 28800, sales, sales, sales // 20, sales // 20, "RUB",
                                )
                            )  # fmt: skip
                    await conn.copy_records_to_table(
                        "shifts",
                        schema_name=schema,
                        columns=[
                            "employee_id", "status", "opened_at", "closed_at", "local_date",
                            "worked_seconds", "sales_total", "commission_base", "commission",
                            "total", "currency",
                        ],
                        records=rows,
                    )  # fmt: skip
                    await conn.execute(f'ANALYZE "{schema}".shifts')
                    await conn.execute(f'SET search_path TO "{schema}"')
                    from plugins.shifts.repository import MONTH_REPORT

                    query_times = []
                    for _ in range(rounds):
                        started = time.perf_counter()
                        report = await conn.fetch(
                            MONTH_REPORT, MONTH, date(2026, 12, 1), ["approved", "paid"], None
                        )
                        query_times.append(time.perf_counter() - started)
                    assert len(report) == EMPLOYEES and all(
                        r["shifts"] == SHIFTS_EACH for r in report
                    )
                http_times = []
                for _ in range(max(3, rounds // 4)):
                    started = time.perf_counter()
                    response = await harness.client.get(f"{base}/reports/2026-11", headers=headers)
                    http_times.append(time.perf_counter() - started)
                    assert (
                        response.status_code == 200
                        and len(response.json()["employees"]) == EMPLOYEES
                    )
                await pool.close()
            finally:
                await harness.stop()
                await harness.cleanup()
    api_rate, raw_rate = count / api_seconds, count / raw_seconds
    print(f"shifts: {count} open+close pairs, concurrency {concurrency}")
    print(f"{'path':<44}{'shifts/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(
        f"{'HTTP API (open + close, pay, events)':<44}{api_rate:>10.1f}"
        f"{1000 * statistics.median(latencies):>10.1f}{1000 * percentile(latencies, 0.99):>10.1f}"
    )
    print(f"{'raw asyncpg (same rows, 1 tx)':<44}{raw_rate:>10.1f}{'':>10}{'':>10}")
    print(f"raw / API: {raw_rate / api_rate:.1f}x")
    print(
        f"month report, {EMPLOYEES} employees x {SHIFTS_EACH} shifts: query median "
        f"{1000 * statistics.median(query_times):.1f} ms, p99 {1000 * percentile(query_times, 0.99):.1f} ms"
        f" ({rounds} runs); GET /reports/2026-11 median {1000 * statistics.median(http_times):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shifts", type=int, default=300, help="open+close pairs per side")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20, help="runs of the month report query")
    args = parser.parse_args()
    database_url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    redis_url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if not database_url or not redis_url:
        from core.runtime.embedded import EmbeddedServers

        servers = EmbeddedServers()
        data = Path(tempfile.mkdtemp(prefix="tenantry-bench-servers-"))
        database_url = database_url or servers.start_postgres(data / "pg")
        redis_url = redis_url or servers.start_redis(data / "redis.db")
    asyncio.run(bench(database_url, redis_url, args.shifts, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
