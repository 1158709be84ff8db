"""Settings of the shifts plugin: the ``features.shifts`` block of a tenant file.

Every amount is an integer of the currency's minor unit (kopecks, cents);
percents are written with at most two decimals (``7.5``) and kept as basis
points (hundredths of a percent, ``750``), so the commission is computed in
integers (:mod:`plugins.shifts.service.commission`).

A rate table is a list of half-open sales intervals ``[from, to)``; the last
one has no ``to`` (it is open-ended). Together they must cover every amount
from 0 up, with no gap and no overlap: a table that does not is refused when
the file is loaded, with an error naming the intervals
(``tenants/crew.yaml:21: features.shifts.commission.rates: gap between
[0, 5000000) and [6000000, 10000000): sales of 5000000 up to 6000000 fall in
no interval``). Sections by sales range as in Odoo's commission module.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Annotated, Literal

import msgspec

__all__ = [
    "WEEKDAYS",
    "BonusRule",
    "CommissionSettings",
    "RankSpec",
    "RateBand",
    "SalesCategory",
    "ShiftsSettings",
    "check_rate_table",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names of bonus rules, in ``date.weekday()`` order."""

_SLUG = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
# bigint columns, and far beyond any real shift: 10^12 minor units.
_MONEY = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
_PERCENT = Annotated[float, msgspec.Meta(ge=0, le=100)]
_STATE = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


def basis_points(percent: float) -> int:
    """``percent`` (at most two decimals) as an integer of hundredths of a percent.

    Raises:
        ValueError: more than two decimals (``7.125``).
    """
    scaled = round(percent * 100)
    if abs(percent * 100 - scaled) > 1e-6:
        raise ValueError(f"percent {percent} has more than two decimals")
    return scaled


def _interval(band: RateBand) -> str:
    upper = "∞" if band.to is None else str(band.to)
    return f"[{band.from_}, {upper})"


def check_rate_table(bands: list[RateBand]) -> None:
    """Check that ``bands`` cover ``[0, ∞)`` once: no gap, no overlap, open-ended last.

    The intervals are taken in order of ``from``; the message names the
    intervals at fault, as written (minor units).

    Raises:
        ValueError: an empty table, an interval whose ``to`` is not above its
            ``from``, a first interval that does not start at 0, a gap or an
            overlap between neighbours, an interval after an open-ended one,
            or a bounded last interval.
    """
    if not bands:
        raise ValueError("rates: the rate table is empty; give at least {from: 0, percent: ...}")
    for band in bands:
        if band.to is not None and band.to <= band.from_:
            raise ValueError(f"rates: interval {_interval(band)} is empty (to must be above from)")
    ordered = sorted(bands, key=lambda b: b.from_)
    if ordered[0].from_ != 0:
        raise ValueError(
            f"rates: the first interval {_interval(ordered[0])} must start at 0: "
            f"sales below {ordered[0].from_} fall in no interval"
        )
    for previous, current in itertools.pairwise(ordered):
        if previous.to is None:
            raise ValueError(
                f"rates: overlap between {_interval(previous)} and {_interval(current)}: "
                f"the open-ended interval already covers sales from {previous.from_} up"
            )
        if current.from_ > previous.to:
            raise ValueError(
                f"rates: gap between {_interval(previous)} and {_interval(current)}: "
                f"sales of {previous.to} up to {current.from_} fall in no interval"
            )
        if current.from_ < previous.to:
            raise ValueError(
                f"rates: overlap between {_interval(previous)} and {_interval(current)}: "
                f"sales of {current.from_} up to {previous.to} fall in both"
            )
    if ordered[-1].to is not None:
        raise ValueError(
            f"rates: the last interval {_interval(ordered[-1])} must be open-ended (leave out to): "
            f"sales of {ordered[-1].to} and more fall in no interval"
        )


class RateBand(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One interval of a rate table: sales in ``[from, to)`` earn ``percent``.

    Attributes:
        from_: lower bound, minor units, included (YAML key ``from``).
        percent: the rate, 0-100 with at most two decimals.
        to: upper bound, minor units, excluded; leave it out on the last
            (open-ended) interval.
    """

    from_: _MONEY = msgspec.field(name="from")
    percent: _PERCENT
    to: _MONEY | None = None

    def __post_init__(self) -> None:
        """Raises ValueError: a percent with more than two decimals."""
        basis_points(self.percent)

    @property
    def basis_points(self) -> int:
        """The rate in hundredths of a percent (``7.5`` -> ``750``)."""
        return basis_points(self.percent)


def _default_rates() -> list[RateBand]:
    return [RateBand(from_=0, percent=0.0)]


class CommissionSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a shift's commission is computed from its sales.

    Attributes:
        mode: ``flat``: the whole base at the rate of the interval it falls
            in; ``progressive``: each part of the base at its own interval's
            rate, like tax brackets. Default ``progressive``.
        rates: the rate table (see the module docstring). Default one
            interval ``[0, ∞)`` at 0 %.
    """

    mode: Literal["flat", "progressive"] = "progressive"
    rates: list[RateBand] = msgspec.field(default_factory=_default_rates)

    def __post_init__(self) -> None:
        """Raises ValueError: the rate table has a gap or an overlap (see :func:`check_rate_table`)."""
        check_rate_table(self.rates)


class SalesCategory(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A category sales are entered by when a shift is closed (``bar``, ``kitchen``).

    Attributes:
        id: slug used in the API, imports and the bot (1-32 of ``a-z0-9_-``).
        name: shown in the bot and the reports.
        commission: its sales count towards the commission base. Default True.
    """

    id: _SLUG
    name: _NAME
    commission: bool = True


class RankSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A rank an employee holds for a month, earned by the month before.

    Attributes:
        id: slug (``silver``).
        name: shown to staff.
        threshold: last month's counted sales (minor units) or shifts (see
            ``rank_basis``) needed for this rank. Ranks are tried from the
            highest threshold down; an employee below every threshold has no rank.
        bonus_percent: extra pay of this percent of each shift's commission
            base, recorded as the bonus ``rank:<id>``. Default 0.
        rates: a rate table used instead of ``commission.rates`` while the
            rank is held (same rules). Default none.
    """

    id: _SLUG
    name: _NAME
    threshold: _MONEY
    bonus_percent: _PERCENT = 0.0
    rates: list[RateBand] | None = None

    def __post_init__(self) -> None:
        """Raises ValueError: a bad percent or a rate table with a gap or overlap."""
        basis_points(self.bonus_percent)
        if self.rates is not None:
            check_rate_table(self.rates)


class BonusRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A named bonus applied to every shift that meets its conditions.

    Day conditions (``weekdays``, ``dates``, ``holidays``) are alternatives:
    the shift's local date must match one of those given. The others must
    all hold. A rule with no condition applies to every shift.

    Attributes:
        id: slug, recorded with each shift it applies to.
        name: shown in the bot and the reports.
        amount: fixed bonus, minor units. Give ``amount`` or ``percent``.
        percent: bonus of this percent of the shift's commission base.
        weekdays: ``mon`` ... ``sun``. Default none.
        dates: local dates (``2026-12-31``). Default none.
        holidays: the shift falls on one of the settings' ``holidays``. Default False.
        min_sales: the shift's total sales must reach this many minor units.
        ranks: the employee must hold one of these ranks for the shift's month.
    """

    id: _SLUG
    name: _NAME
    amount: _MONEY | None = None
    percent: _PERCENT | None = None
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = []
    dates: list[date] = []
    holidays: bool = False
    min_sales: _MONEY | None = None
    ranks: list[_SLUG] = []

    def __post_init__(self) -> None:
        """Raises ValueError: both or neither of ``amount`` and ``percent``."""
        if (self.amount is None) == (self.percent is None):
            raise ValueError(f"bonus '{self.id}' needs exactly one of amount or percent")
        if self.percent is not None:
            basis_points(self.percent)


class ShiftsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``features.shifts``: pay rules, ranks, bonuses and the states that matter.

    Attributes:
        currency: ISO 4217 code of every amount. Default ``RUB``.
        pay_period: ``monthly``: reports, ranks and month views cover a
            calendar month in the tenant's time zone (a shift belongs to the
            local date it was opened on). Default and only value.
        rounding: ``half_up``: base pay, commission and each percent bonus
            are rounded to the minor unit, half up, once per shift. Default
            and only value.
        commission: mode and rate table (:class:`CommissionSettings`).
        categories: sales categories asked for when a shift closes; none
            means one total. Default none.
        hourly_rates: base pay per hour worked by role (``staff``,
            ``manager``), minor units; an employee's own ``hourly_rate``
            wins. Default none (no base pay).
        ranks: the ranks (:class:`RankSpec`). Default none.
        rank_basis: ``sales`` or ``shifts`` of last month give the rank.
            Default ``sales``.
        bonuses: bonus rules (:class:`BonusRule`). Default none.
        holidays: local dates that count as holidays for bonus rules.
        closed_status: status a shift takes when it is closed (must be a
            state of ``statuses.shift``). Default ``submitted``.
        approved_status: a manager's Approve. Default ``approved``.
        rejected_status: a manager's Reject. Default ``rejected``.
        counted_statuses: shifts in these states count in reports, ranks and
            month totals. Default ``[approved, paid]``.
        correctable_statuses: states in which a manager may correct a shift.
            Default ``[submitted, approved, rejected]``.
        remind_after_hours: a shift still open this long after clock-in gets
            one reminder to the employee and the managers; 0 disables. 0-72,
            default 14.
        max_shift_hours: longest shift accepted when closing or correcting,
            1-72, default 24.
        invite_ttl_hours: an invite link works this long and once, 1-720,
            default 72.
    """

    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "RUB"
    pay_period: Literal["monthly"] = "monthly"
    rounding: Literal["half_up"] = "half_up"
    commission: CommissionSettings = msgspec.field(default_factory=CommissionSettings)
    categories: list[SalesCategory] = []
    hourly_rates: dict[Literal["staff", "manager"], _MONEY] = {}
    ranks: list[RankSpec] = []
    rank_basis: Literal["sales", "shifts"] = "sales"
    bonuses: list[BonusRule] = []
    holidays: list[date] = []
    closed_status: _STATE = "submitted"
    approved_status: _STATE = "approved"
    rejected_status: _STATE = "rejected"
    counted_statuses: list[_STATE] = msgspec.field(default_factory=lambda: ["approved", "paid"])
    correctable_statuses: list[_STATE] = msgspec.field(
        default_factory=lambda: ["submitted", "approved", "rejected"]
    )
    remind_after_hours: Annotated[int, msgspec.Meta(ge=0, le=72)] = 14
    max_shift_hours: Annotated[int, msgspec.Meta(ge=1, le=72)] = 24
    invite_ttl_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] = 72

    def __post_init__(self) -> None:
        """Cross-field checks msgspec cannot express.

        Raises:
            ValueError: duplicate category, rank or bonus ids, ranks whose
                thresholds repeat, or a bonus naming an unknown rank.
        """
        for field, ids in (
            ("categories", [c.id for c in self.categories]),
            ("ranks", [r.id for r in self.ranks]),
            ("bonuses", [b.id for b in self.bonuses]),
        ):
            seen: set[str] = set()
            for code in ids:
                if code in seen:
                    raise ValueError(f"{field}: id '{code}' is used twice")
                seen.add(code)
        thresholds = [r.threshold for r in self.ranks]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError("ranks: two ranks have the same threshold")
        rank_ids = {r.id for r in self.ranks}
        for bonus in self.bonuses:
            for rank in bonus.ranks:
                if rank not in rank_ids:
                    raise ValueError(f"bonuses: '{bonus.id}' names unknown rank '{rank}'")

    def rank(self, rank_id: str | None) -> RankSpec | None:
        """The rank ``rank_id``, or None."""
        return next((r for r in self.ranks if r.id == rank_id), None)

    def rank_for(self, achieved: int) -> RankSpec | None:
        """The highest rank whose threshold ``achieved`` (sales or shifts) reaches, or None."""
        reached = [r for r in self.ranks if achieved >= r.threshold]
        return max(reached, key=lambda r: r.threshold) if reached else None

    def next_rank(self, achieved: int) -> RankSpec | None:
        """The lowest rank whose threshold ``achieved`` does not reach yet, or None."""
        above = [r for r in self.ranks if achieved < r.threshold]
        return min(above, key=lambda r: r.threshold) if above else None

    def category(self, category_id: str) -> SalesCategory | None:
        """The sales category ``category_id``, or None."""
        return next((c for c in self.categories if c.id == category_id), None)
