"""The pay of one shift, in integers: the one place commission, base pay and bonuses are computed.

Pure functions, no I/O: the bot, the API, corrections, the importer and the
benchmarks all call :func:`shift_pay`. Amounts are integers of the currency's
minor unit; rates are basis points (hundredths of a percent). Rounding is
half up to the minor unit, once per amount per shift (``features.shifts.rounding``):
a progressive commission adds the exact products of every interval first and
rounds the sum, so splitting the base never loses or gains a kopeck.

Modes (sections by sales range, as in Odoo's commission module):

* ``flat``: the whole base at the rate of the interval it falls in
  (``[from, to)``: a base equal to ``to`` is in the next interval);
* ``progressive``: each part of the base at its own interval's rate, like
  tax brackets.

Worked example (``docs/plugins/shifts.md``): rates ``[0, 50000) 3 %``,
``[50000, 100000) 5 %``, ``[100000, ∞) 7 %`` and a base of 120000 give
flat ``120000 × 7 % = 8400`` and progressive
``50000 × 3 % + 50000 × 5 % + 20000 × 7 % = 1500 + 2500 + 1400 = 5400``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import msgspec

from plugins.shifts.config import WEEKDAYS, RankSpec, RateBand, ShiftsSettings, basis_points

__all__ = [
    "BonusLine",
    "CommissionPart",
    "ShiftPay",
    "base_pay",
    "bonuses_for",
    "commission",
    "commission_base",
    "commission_parts",
    "rate_for",
    "round_half_up",
    "shift_pay",
]

_BASIS = 10_000
"""Basis points in one whole (100 % = 10000)."""


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves up (both >= 0 ints)."""
    return (2 * numerator + denominator) // (2 * denominator)


def rate_for(base: int, rates: Sequence[RateBand]) -> int:
    """Basis points of the interval ``[from, to)`` holding ``base`` (a valid table, base >= 0)."""
    for band in rates:
        if band.from_ <= base and (band.to is None or base < band.to):
            return band.basis_points
    raise ValueError(f"no interval holds {base}; the rate table was not validated")


def commission(base: int, rates: Sequence[RateBand], mode: str) -> int:
    """Commission of ``base`` minor units under ``rates``.

    Args:
        base: the commission base, minor units, >= 0.
        rates: a rate table that passed :func:`plugins.shifts.config.check_rate_table`.
        mode: ``flat`` or ``progressive``.

    Returns:
        Minor units, rounded half up once.

    Raises:
        ValueError: a negative base or an unknown mode.
    """
    if base < 0:
        raise ValueError(f"the commission base cannot be negative ({base})")
    if mode == "flat":
        return round_half_up(base * rate_for(base, rates), _BASIS)
    if mode != "progressive":
        raise ValueError(f"unknown commission mode {mode!r}")
    exact = 0
    for band in rates:
        upper = base if band.to is None else min(base, band.to)
        if upper > band.from_:
            exact += (upper - band.from_) * band.basis_points
    return round_half_up(exact, _BASIS)


class CommissionPart(msgspec.Struct, frozen=True):
    """The share of a commission base that one interval of the rate table pays for.

    Attributes:
        from_: the interval's lower bound, minor units (JSON ``from``).
        to: its upper bound (excluded), or None for the open-ended one.
        percent: its rate.
        base: the part of the base paid at this rate, minor units (flat: the
            whole base, in the interval holding it).
        exact: ``base × percent`` before rounding, in minor units with up
            to four decimals, as a decimal string (``"1499.97"``).
    """

    from_: int = msgspec.field(name="from")
    to: int | None = None
    percent: float = 0.0
    base: int = 0
    exact: str = "0"


def _exact(amount_bp: int) -> str:
    """``amount_bp`` ten-thousandths of a minor unit as a decimal string without trailing zeros."""
    whole, fraction = divmod(amount_bp, _BASIS)
    return f"{whole}.{fraction:04d}".rstrip("0").rstrip(".") if fraction else str(whole)


def commission_parts(base: int, rates: Sequence[RateBand], mode: str) -> list[CommissionPart]:
    """How :func:`commission` reaches its amount: the base split over the intervals it pays.

    The commission is the sum of the parts' ``exact`` amounts rounded half up
    once (so it can differ by a fraction from adding rounded parts).

    Args:
        base: the commission base, minor units, >= 0.
        rates: a validated rate table.
        mode: ``flat`` (one part: the whole base at its interval's rate) or
            ``progressive`` (a part per interval the base reaches).

    Raises:
        ValueError: a negative base or an unknown mode.
    """
    if base < 0:
        raise ValueError(f"the commission base cannot be negative ({base})")
    if mode == "flat":
        band = next(b for b in rates if b.from_ <= base and (b.to is None or base < b.to))
        return [
            CommissionPart(
                from_=band.from_,
                to=band.to,
                percent=band.percent,
                base=base,
                exact=_exact(base * band.basis_points),
            )
        ]
    if mode != "progressive":
        raise ValueError(f"unknown commission mode {mode!r}")
    parts = []
    for band in sorted(rates, key=lambda b: b.from_):
        upper = base if band.to is None else min(base, band.to)
        if upper > band.from_:
            part = upper - band.from_
            parts.append(
                CommissionPart(
                    from_=band.from_,
                    to=band.to,
                    percent=band.percent,
                    base=part,
                    exact=_exact(part * band.basis_points),
                )
            )
    return parts


def base_pay(hourly_rate: int, worked_seconds: int) -> int:
    """Pay for time worked: ``hourly_rate`` minor units per hour, rounded half up."""
    return round_half_up(hourly_rate * max(worked_seconds, 0), 3600)


def commission_base(settings: ShiftsSettings, sales: Mapping[str, int]) -> tuple[int, int]:
    """``(total sales, commission base)`` of a shift's sales by category.

    Without categories the sales are one amount under the key ``total``.
    A category with ``commission: false`` counts in the total only.
    """
    total = sum(sales.values())
    if not settings.categories:
        return total, total
    base = 0
    for category_id, amount in sales.items():
        category = settings.category(category_id)
        if category is None or category.commission:
            base += amount
    return total, base


class BonusLine(msgspec.Struct, frozen=True):
    """A bonus applied to a shift.

    Attributes:
        bonus: the rule's id, or ``rank:<rank id>`` for a rank's bonus percent.
        name: the rule's (or rank's) name when it was applied.
        amount: minor units.
    """

    bonus: str
    name: str
    amount: int


def bonuses_for(
    settings: ShiftsSettings,
    *,
    local_date: date,
    sales_total: int,
    base: int,
    rank: RankSpec | None,
) -> list[BonusLine]:
    """The bonus rules that apply to a shift, and its rank's bonus, in settings order.

    Args:
        settings: the tenant's settings.
        local_date: the shift's date in the tenant's time zone.
        sales_total: all its sales, minor units (``min_sales`` compares with it).
        base: its commission base, minor units (percent bonuses are of it).
        rank: the rank the employee holds for the shift's month.
    """
    lines: list[BonusLine] = []
    weekday = WEEKDAYS[local_date.weekday()]
    for rule in settings.bonuses:
        day_conditions = bool(rule.weekdays or rule.dates or rule.holidays)
        on_day = (
            weekday in rule.weekdays
            or local_date in rule.dates
            or (rule.holidays and local_date in settings.holidays)
        )
        if day_conditions and not on_day:
            continue
        if rule.min_sales is not None and sales_total < rule.min_sales:
            continue
        if rule.ranks and (rank is None or rank.id not in rule.ranks):
            continue
        if rule.amount is not None:
            amount = rule.amount
        else:
            amount = round_half_up(base * basis_points(rule.percent or 0.0), _BASIS)
        lines.append(BonusLine(bonus=rule.id, name=rule.name, amount=amount))
    if rank is not None and rank.bonus_percent:
        amount = round_half_up(base * basis_points(rank.bonus_percent), _BASIS)
        lines.append(BonusLine(bonus=f"rank:{rank.id}", name=rank.name, amount=amount))
    return lines


class ShiftPay(msgspec.Struct, frozen=True):
    """What one shift earns.

    Attributes:
        sales_total: all sales, minor units.
        commission_base: the part of the sales commission is paid on.
        mode: ``flat`` or ``progressive``.
        rate_bp: basis points of the interval the base falls in (the flat
            rate; in progressive mode the top rate reached).
        rank: the rank whose table and bonus applied, or None.
        base_pay: pay for hours worked.
        commission: commission on the base.
        bonuses: applied bonuses.
        bonus_total: their sum.
        total: ``base_pay + commission + bonus_total``.
    """

    sales_total: int
    commission_base: int
    mode: str
    rate_bp: int
    rank: str | None
    base_pay: int
    commission: int
    bonuses: list[BonusLine]
    bonus_total: int
    total: int


def shift_pay(
    settings: ShiftsSettings,
    *,
    sales: Mapping[str, int],
    worked_seconds: int,
    local_date: date,
    hourly_rate: int,
    rank: RankSpec | None = None,
) -> ShiftPay:
    """Compute the pay of one shift.

    Args:
        settings: the tenant's ``features.shifts``.
        sales: category id -> minor units (``{"total": n}`` without categories); all >= 0.
        worked_seconds: clock-out minus clock-in.
        local_date: the shift's date in the tenant's time zone (bonus days).
        hourly_rate: minor units per hour (the employee's own, else the role's).
        rank: the rank held for the shift's month; its ``rates`` replace the
            commission table and its ``bonus_percent`` adds a bonus.

    Raises:
        ValueError: a negative amount.
    """
    if any(amount < 0 for amount in sales.values()):
        raise ValueError("sales cannot be negative")
    total_sales, base = commission_base(settings, sales)
    rates = rank.rates if rank is not None and rank.rates is not None else settings.commission.rates
    mode = settings.commission.mode
    earned = commission(base, rates, mode)
    bonuses = bonuses_for(
        settings, local_date=local_date, sales_total=total_sales, base=base, rank=rank
    )
    paid_for_time = base_pay(hourly_rate, worked_seconds)
    bonus_total = sum(line.amount for line in bonuses)
    return ShiftPay(
        sales_total=total_sales,
        commission_base=base,
        mode=mode,
        rate_bp=rate_for(base, rates),
        rank=rank.id if rank is not None else None,
        base_pay=paid_for_time,
        commission=earned,
        bonuses=bonuses,
        bonus_total=bonus_total,
        total=paid_for_time + earned + bonus_total,
    )
