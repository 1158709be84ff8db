"""SQL of the shifts plugin: plain asyncpg calls on a connection whose search_path is the tenant's.

Amounts are bigint minor units; ``month`` arguments are the first day of a
tenant-local month and ``local_date`` ranges are half-open ``[start, end)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

EMPLOYEE_COLUMNS = "id, user_id, name, role, hourly_rate, active, external_id, created_at"
SHIFT_COLUMNS = """
    s.id, s.employee_id, e.name AS employee_name, s.status, s.opened_at, s.closed_at,
    s.local_date, s.worked_seconds, s.sales, s.sales_total, s.commission_base, s.rate_bp,
    s.rank, s.base_pay, s.commission, s.bonus_total, s.total, s.currency, s.created_at,
    s.updated_at
"""


def from_json(value: str | None) -> Any:
    """A ``jsonb`` column as read by asyncpg (text) decoded; None stays None.

    The shared pool keeps asyncpg's default codecs (no per-connection setup),
    so JSON is encoded and decoded here.
    """
    return json.loads(value) if value is not None else None


# ---------------------------------------------------------------- employees


async def insert_employee(
    conn: Conn,
    *,
    name: str,
    role: str,
    user_id: int | None,
    hourly_rate: int | None,
    external_id: str | None = None,
) -> asyncpg.Record:
    """Insert an employee and return the row.

    Raises:
        asyncpg.UniqueViolationError: the Telegram user or external id is taken.
    """
    return await conn.fetchrow(
        f"""
        INSERT INTO employees (name, role, user_id, hourly_rate, external_id)
        VALUES ($1, $2, $3, $4, $5) RETURNING {EMPLOYEE_COLUMNS}
        """,
        name,
        role,
        user_id,
        hourly_rate,
        external_id,
    )


async def get_employee(conn: Conn, employee_id: int) -> asyncpg.Record | None:
    """The employee ``employee_id``, or None."""
    return await conn.fetchrow(
        f"SELECT {EMPLOYEE_COLUMNS} FROM employees WHERE id = $1", employee_id
    )


async def employee_by_user(conn: Conn, user_id: int) -> asyncpg.Record | None:
    """The employee whose Telegram user id is ``user_id``, or None."""
    return await conn.fetchrow(
        f"SELECT {EMPLOYEE_COLUMNS} FROM employees WHERE user_id = $1", user_id
    )


async def list_employees(conn: Conn, *, active_only: bool = False) -> list[asyncpg.Record]:
    """Employees by name."""
    return await conn.fetch(
        f"SELECT {EMPLOYEE_COLUMNS} FROM employees WHERE active OR NOT $1 ORDER BY name, id",
        active_only,
    )


async def update_employee(
    conn: Conn, employee_id: int, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Set the given columns (``name``, ``role``, ``hourly_rate``, ``active``, ``user_id``)."""
    allowed = ("name", "role", "hourly_rate", "active", "user_id")
    columns = [c for c in allowed if c in changes]
    if not columns:
        return await get_employee(conn, employee_id)
    assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    return await conn.fetchrow(
        f"UPDATE employees SET {assignments}, updated_at = now() WHERE id = $1"
        f" RETURNING {EMPLOYEE_COLUMNS}",
        employee_id,
        *(changes[c] for c in columns),
    )


async def staff_user_ids(conn: Conn) -> list[asyncpg.Record]:
    """``(user_id, id, role)`` of every active employee who joined (the role directory)."""
    return await conn.fetch(
        "SELECT user_id, id, role FROM employees WHERE active AND user_id IS NOT NULL"
    )


# ---------------------------------------------------------------- invites


async def insert_invite(
    conn: Conn, token_sha256: str, employee_id: int, created_by: int | None, expires_at: datetime
) -> None:
    """Store an invite by the SHA-256 of its token."""
    await conn.execute(
        "INSERT INTO invites (token_sha256, employee_id, created_by, expires_at)"
        " VALUES ($1, $2, $3, $4)",
        token_sha256,
        employee_id,
        created_by,
        expires_at,
    )


async def use_invite(conn: Conn, token_sha256: str, user_id: int) -> int | None:
    """Mark an unused, unexpired invite used by ``user_id``; its employee id, or None."""
    return await conn.fetchval(
        """
        UPDATE invites SET used_at = now(), used_by = $2
        WHERE token_sha256 = $1 AND used_at IS NULL AND expires_at > now()
        RETURNING employee_id
        """,
        token_sha256,
        user_id,
    )


# ---------------------------------------------------------------- shifts


async def open_shift(
    conn: Conn, employee_id: int, status: str, opened_at: datetime, local_date: date, currency: str
) -> int:
    """Insert an open shift; its id.

    Raises:
        asyncpg.UniqueViolationError: the employee already has an open shift.
    """
    return await conn.fetchval(
        "INSERT INTO shifts (employee_id, status, opened_at, local_date, currency)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        employee_id,
        status,
        opened_at,
        local_date,
        currency,
    )


async def open_shift_of(conn: Conn, employee_id: int) -> asyncpg.Record | None:
    """The employee's open shift, or None."""
    return await conn.fetchrow(
        f"SELECT {SHIFT_COLUMNS} FROM shifts s JOIN employees e ON e.id = s.employee_id"
        " WHERE s.employee_id = $1 AND s.closed_at IS NULL",
        employee_id,
    )


async def get_shift(conn: Conn, shift_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """The shift with its employee's name; ``lock`` takes ``FOR UPDATE`` on the shift row."""
    return await conn.fetchrow(
        f"SELECT {SHIFT_COLUMNS} FROM shifts s JOIN employees e ON e.id = s.employee_id"
        f" WHERE s.id = $1{' FOR UPDATE OF s' if lock else ''}",
        shift_id,
    )


async def write_pay(
    conn: Conn,
    shift_id: int,
    *,
    status: str,
    opened_at: datetime,
    closed_at: datetime | None,
    local_date: date,
    worked_seconds: int,
    sales: dict[str, int],
    pay: Any,
) -> None:
    """Store a shift's times, sales and computed pay (a ``ShiftPay``) and replace its bonuses."""
    await conn.execute(
        """
        UPDATE shifts SET status = $2, opened_at = $3, closed_at = $4, local_date = $5,
            worked_seconds = $6, sales = $7, sales_total = $8, commission_base = $9,
            rate_bp = $10, rank = $11, base_pay = $12, commission = $13, bonus_total = $14,
            total = $15, updated_at = now()
        WHERE id = $1
        """,
        shift_id,
        status,
        opened_at,
        closed_at,
        local_date,
        worked_seconds,
        json.dumps(sales),
        pay.sales_total,
        pay.commission_base,
        pay.rate_bp,
        pay.rank,
        pay.base_pay,
        pay.commission,
        pay.bonus_total,
        pay.total,
    )
    await conn.execute("DELETE FROM shift_bonuses WHERE shift_id = $1", shift_id)
    if pay.bonuses:
        await conn.executemany(
            "INSERT INTO shift_bonuses (shift_id, bonus, name, amount) VALUES ($1, $2, $3, $4)",
            [(shift_id, b.bonus, b.name, b.amount) for b in pay.bonuses],
        )


async def set_status(conn: Conn, shift_id: int, status: str) -> None:
    """Move a shift to ``status``."""
    await conn.execute(
        "UPDATE shifts SET status = $2, updated_at = now() WHERE id = $1", shift_id, status
    )


async def search_shifts(
    conn: Conn,
    *,
    employee_id: int | None,
    start: date | None,
    end: date | None,
    statuses: Sequence[str] | None,
    limit: int,
    before: int | None = None,
) -> list[asyncpg.Record]:
    """Shifts newest first, filtered by employee, ``local_date`` in ``[start, end)`` and status."""
    return await conn.fetch(
        f"""
        SELECT {SHIFT_COLUMNS} FROM shifts s JOIN employees e ON e.id = s.employee_id
        WHERE ($1::bigint IS NULL OR s.employee_id = $1)
          AND ($2::date IS NULL OR s.local_date >= $2)
          AND ($3::date IS NULL OR s.local_date < $3)
          AND ($4::text[] IS NULL OR s.status = ANY($4))
          AND ($6::bigint IS NULL OR s.id < $6)
        ORDER BY s.opened_at DESC, s.id DESC
        LIMIT $5
        """,
        employee_id,
        start,
        end,
        list(statuses) if statuses is not None else None,
        limit,
        before,
    )


async def bonuses_of(conn: Conn, shift_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Bonus lines of the shifts, by shift and bonus."""
    return await conn.fetch(
        "SELECT shift_id, bonus, name, amount FROM shift_bonuses WHERE shift_id = ANY($1)"
        " ORDER BY shift_id, bonus",
        list(shift_ids),
    )


async def open_shifts_to_remind(conn: Conn, opened_before: datetime) -> list[asyncpg.Record]:
    """Open shifts opened before ``opened_before`` without a reminder; marks them reminded."""
    return await conn.fetch(
        """
        UPDATE shifts s SET reminded_at = now()
        FROM employees e
        WHERE e.id = s.employee_id AND s.closed_at IS NULL AND s.reminded_at IS NULL
          AND s.opened_at < $1
        RETURNING s.id, s.employee_id, e.user_id, e.name AS employee_name, s.opened_at
        """,
        opened_before,
    )


# ---------------------------------------------------------------- history


async def add_history(
    conn: Conn,
    shift_id: int,
    from_status: str | None,
    to_status: str,
    actor_id: int | None,
    role: str,
    reason: str = "",
    changes: dict[str, Any] | None = None,
) -> None:
    """Record a status change or a correction (``changes``: field -> ``{"from", "to"}``)."""
    await conn.execute(
        "INSERT INTO shift_history (shift_id, from_status, to_status, actor_id, role, reason, changes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        shift_id,
        from_status,
        to_status,
        actor_id,
        role,
        reason,
        json.dumps(changes or {}),
    )


async def history_of(conn: Conn, shift_id: int) -> list[asyncpg.Record]:
    """The shift's history, oldest first."""
    return await conn.fetch(
        "SELECT from_status, to_status, actor_id, role, reason, changes, at"
        " FROM shift_history WHERE shift_id = $1 ORDER BY id",
        shift_id,
    )


# ---------------------------------------------------------------- ranks


async def rank_of(conn: Conn, employee_id: int, month: date) -> str | None:
    """The rank ``employee_id`` holds in ``month``, or None."""
    return await conn.fetchval(
        "SELECT rank FROM employee_ranks WHERE employee_id = $1 AND month = $2",
        employee_id,
        month,
    )


async def claim_rank_run(conn: Conn, month: date, employees: int) -> bool:
    """Record that ``month``'s ranks are being computed; False when another run has them.

    Two transactions inserting one month: the second waits for the first and
    then inserts nothing (the primary key), so only one run writes ranks.
    """
    status = await conn.execute(
        "INSERT INTO rank_runs (month, employees) VALUES ($1, $2) ON CONFLICT (month) DO NOTHING",
        month,
        employees,
    )
    return status.endswith(" 1")


async def achieved(
    conn: Conn, start: date, end: date, counted: Sequence[str]
) -> list[asyncpg.Record]:
    """``(employee_id, sales, shifts)`` of counted shifts with ``local_date`` in ``[start, end)``."""
    return await conn.fetch(
        """
        SELECT e.id AS employee_id, coalesce(sum(s.sales_total), 0)::bigint AS sales,
               count(s.id)::bigint AS shifts
        FROM employees e
        LEFT JOIN shifts s ON s.employee_id = e.id AND s.local_date >= $1
             AND s.local_date < $2 AND s.status = ANY($3)
        WHERE e.active
        GROUP BY e.id
        """,
        start,
        end,
        list(counted),
    )


async def upsert_ranks(
    conn: Conn, month: date, rows: Sequence[tuple[int, str | None, int]]
) -> None:
    """Write ``(employee_id, rank, achieved)`` for ``month`` (an import or the monthly job)."""
    await conn.executemany(
        """
        INSERT INTO employee_ranks (employee_id, month, rank, achieved) VALUES ($1, $2, $3, $4)
        ON CONFLICT (employee_id, month) DO NOTHING
        """,
        [(employee_id, month, rank, value) for employee_id, rank, value in rows],
    )


async def ranks_in(conn: Conn, month: date) -> dict[int, str | None]:
    """employee id -> rank held in ``month``."""
    rows = await conn.fetch("SELECT employee_id, rank FROM employee_ranks WHERE month = $1", month)
    return {r["employee_id"]: r["rank"] for r in rows}


# ---------------------------------------------------------------- reports


MONTH_REPORT = """
WITH totals AS (
    SELECT employee_id, count(*)::bigint AS shifts, sum(worked_seconds)::bigint AS worked_seconds,
           sum(sales_total)::bigint AS sales, sum(base_pay)::bigint AS base_pay,
           sum(commission)::bigint AS commission, sum(bonus_total)::bigint AS bonuses,
           sum(total)::bigint AS total
    FROM shifts
    WHERE local_date >= $1 AND local_date < $2 AND status = ANY($3)
      AND ($4::bigint IS NULL OR employee_id = $4)
    GROUP BY employee_id
)
SELECT t.*, e.name AS employee_name
FROM totals t JOIN employees e ON e.id = t.employee_id
ORDER BY e.name, t.employee_id
"""
"""The month report: one aggregate over the month's counted shifts, by employee id (hashed,
no sort of the shifts), then the names of the employees that have any (sorted by name)."""


async def month_report(
    conn: Conn, start: date, end: date, counted: Sequence[str], employee_id: int | None = None
) -> list[asyncpg.Record]:
    """Per-employee totals of counted shifts with ``local_date`` in ``[start, end)``."""
    return await conn.fetch(MONTH_REPORT, start, end, list(counted), employee_id)


async def month_progress(
    conn: Conn, employee_id: int, start: date, end: date, counted: Sequence[str]
) -> asyncpg.Record:
    """An employee's month so far, every shift (``all_*``) and counted ones only."""
    return await conn.fetchrow(
        """
        SELECT count(*)::bigint AS all_shifts,
               coalesce(sum(worked_seconds), 0)::bigint AS all_seconds,
               coalesce(sum(sales_total), 0)::bigint AS all_sales,
               coalesce(sum(commission), 0)::bigint AS all_commission,
               coalesce(sum(bonus_total), 0)::bigint AS all_bonuses,
               coalesce(sum(total), 0)::bigint AS all_total,
               count(*) FILTER (WHERE status = ANY($4))::bigint AS shifts,
               coalesce(sum(sales_total) FILTER (WHERE status = ANY($4)), 0)::bigint AS sales
        FROM shifts WHERE employee_id = $1 AND local_date >= $2 AND local_date < $3
        """,
        employee_id,
        start,
        end,
        list(counted),
    )


# ---------------------------------------------------------------- sync log


async def insert_sync_log(
    conn: Conn,
    *,
    source: str,
    dry_run: bool,
    files: list[str],
    counts: dict[str, dict[str, int]],
    errors: int,
) -> int:
    """Record one import run; its id."""
    return await conn.fetchval(
        "INSERT INTO sync_log (source, dry_run, files, counts, errors) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id",
        source,
        dry_run,
        json.dumps(files),
        json.dumps(counts),
        errors,
    )
