"""Property (hypothesis): the month report equals the sum of its counted shifts, each once.

Shifts of random employees, states, amounts and local dates around the month's
edges are written to the tenant's table; ``GET /reports/2026-11`` must give,
per employee and for the team, the sums of the November shifts in
``counted_statuses`` and nothing of the others.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

COLUMNS = {
    "shifts": None,
    "worked_seconds": "worked_seconds",
    "sales": "sales_total",
    "base_pay": "base_pay",
    "commission": "commission",
    "bonuses": "bonus_total",
    "total": "total",
}

shift_rows = st.lists(
    st.fixed_dictionaries(
        {
            "employee": st.integers(0, 2),
            "local_date": st.dates(date(2026, 10, 30), date(2026, 12, 2)),
            "status": st.sampled_from(["submitted", "approved", "rejected", "paid"]),
            "worked_seconds": st.integers(0, 16 * 3600),
            "sales_total": st.integers(0, 10**9),
            "base_pay": st.integers(0, 10**6),
            "commission": st.integers(0, 10**7),
            "bonus_total": st.integers(0, 10**6),
        }
    ),
    max_size=25,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=shift_rows)
async def test_the_month_report_is_the_sum_of_its_counted_shifts(crew, rows):
    schema = crew.schema
    conn = await asyncpg.connect(crew.h.database_url)
    try:
        employees = [r["id"] for r in await conn.fetch(f'SELECT id FROM "{schema}".employees')]
        if not employees:
            employees = [
                r["id"]
                for r in await conn.fetch(
                    f'INSERT INTO "{schema}".employees (name, role)'
                    " SELECT n, 'staff' FROM unnest($1::text[]) n RETURNING id",
                    ["Ann", "Bob", "Cid"],
                )
            ]
        await conn.execute(f'DELETE FROM "{schema}".shifts')
        await conn.executemany(
            f'INSERT INTO "{schema}".shifts (employee_id, status, opened_at, closed_at, local_date,'
            " worked_seconds, sales_total, base_pay, commission, bonus_total, total, currency)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $8::bigint + $9 + $10, 'RUB')",
            [
                (
                    employees[row["employee"]],
                    row["status"],
                    datetime.combine(row["local_date"], time(10), UTC),
                    datetime.combine(row["local_date"], time(10), UTC)
                    + timedelta(seconds=row["worked_seconds"]),
                    row["local_date"],
                    row["worked_seconds"],
                    row["sales_total"],
                    row["base_pay"],
                    row["commission"],
                    row["bonus_total"],
                )
                for row in rows
            ],
        )
    finally:
        await conn.close()
    report = await crew.ok("GET", "/reports/2026-11")
    counted = [
        {**r, "total": r["base_pay"] + r["commission"] + r["bonus_total"]}
        for r in rows
        if r["local_date"].month == 11 and r["status"] in ("approved", "paid")
    ]

    def sums(mine: list[dict]) -> dict[str, int]:
        return {
            column: len(mine) if field is None else sum(r[field] for r in mine)
            for column, field in COLUMNS.items()
        }

    expected = {
        employees[index]: sums([r for r in counted if r["employee"] == index])
        for index in sorted({r["employee"] for r in counted})
    }
    assert {
        row["employee_id"]: {column: row[column] for column in COLUMNS}
        for row in report["employees"]
    } == expected
    assert report["totals"] == sums(counted)
