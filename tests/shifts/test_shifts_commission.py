"""The commission in integers: hand-computed examples, hypothesis properties, bad YAML rate tables."""

from __future__ import annotations

import textwrap
from datetime import date

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config.loader import load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager
from plugins.shifts.config import RateBand, ShiftsSettings
from plugins.shifts.service.commission import commission, round_half_up, shift_pay

RATES = [
    RateBand(from_=0, to=50000, percent=3),
    RateBand(from_=50000, to=100000, percent=5),
    RateBand(from_=100000, percent=7),
]
MONDAY = date(2026, 11, 2)


@pytest.mark.parametrize(
    ("base", "flat", "progressive"),
    [
        (0, 0, 0),
        (49999, 1500, 1500),  # 49999 x 3% = 1499.97 -> 1500 (half up)
        (50000, 2500, 1500),  # 50000 is in [50000, 100000): flat at 5%
        (120000, 8400, 5400),  # 1500 + 2500 + 20000 x 7% = 1400
        (150, 5, 5),  # 4.5 -> 5: halves go up
        (149, 4, 4),  # 4.47 -> 4
    ],
)
def test_hand_computed_examples(base, flat, progressive):
    assert commission(base, RATES, "flat") == flat
    assert commission(base, RATES, "progressive") == progressive


def test_rounding_is_half_up_once_per_shift():
    assert [round_half_up(n, 10) for n in (4, 5, 14, 15, 25)] == [0, 1, 1, 2, 3]
    # Three bands of odd amounts: rounded once on the exact sum, not band by band.
    bands = [RateBand(from_=0, to=150, percent=3), RateBand(from_=150, percent=3)]
    # 150 x 3% = 4.5 in each band: 9 when the sum is rounded, not 5 + 5.
    assert commission(300, bands, "progressive") == 9


def rate_tables():
    """Valid tables: cut points rising from 0, one percent (two decimals) per interval."""

    def build(cuts_and_rates):
        cuts, rates = cuts_and_rates
        bounds = [0, *sorted(set(cuts))]
        bands = [
            RateBand(from_=lower, to=upper, percent=rate / 100)
            for lower, upper, rate in zip(bounds, [*bounds[1:], None], rates, strict=False)
        ]
        return bands[: len(bounds)]

    cuts = st.lists(st.integers(1, 10**7), min_size=0, max_size=5, unique=True)
    return st.tuples(cuts, st.lists(st.integers(0, 10000), min_size=6, max_size=6)).map(build)


def rising(bands):
    return [
        RateBand(from_=b.from_, to=b.to, percent=p / 100)
        for b, p in zip(bands, sorted(int(b.percent * 100) for b in bands), strict=True)
    ]


@settings(max_examples=200, deadline=None)
@given(rate_tables(), st.integers(0, 10**8))
def test_flat_and_progressive_agree_inside_the_first_interval(bands, base):
    first = bands[0]
    if first.to is not None and base >= first.to:
        base = base % first.to
    assert commission(base, bands, "flat") == commission(base, bands, "progressive")


@settings(max_examples=200, deadline=None)
@given(rate_tables(), st.integers(0, 10**8), st.integers(1, 10**6))
def test_progressive_never_decreases_and_is_continuous(bands, base, step):
    here = commission(base, bands, "progressive")
    assert commission(base + step, bands, "progressive") >= here
    # One more minor unit of sales adds at most one minor unit (rates are at most 100%).
    assert 0 <= commission(base + 1, bands, "progressive") - here <= 1


@settings(max_examples=200, deadline=None)
@given(rate_tables(), st.integers(0, 10**8))
def test_flat_is_never_below_progressive_when_rates_rise(bands, base):
    table = rising(bands)
    assert commission(base, table, "flat") >= commission(base, table, "progressive")


SETTINGS = msgspec.convert(
    {
        "categories": [
            {"id": "bar", "name": "Bar"},
            {"id": "tips", "name": "Tips", "commission": False},
        ],
        "commission": {
            "mode": "progressive",
            "rates": [{"from": 0, "to": 50000, "percent": 3}, {"from": 50000, "percent": 5}],
        },
        "hourly_rates": {"staff": 10000},
        "bonuses": [
            {"id": "weekend", "name": "Weekend", "amount": 5000, "weekdays": ["sat", "sun"]},
            {"id": "big", "name": "Big", "percent": 2.5, "min_sales": 100000},
        ],
        "ranks": [{"id": "silver", "name": "Silver", "threshold": 1, "bonus_percent": 1}],
    },
    ShiftsSettings,
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 16 * 3600),
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    st.booleans(),
)
def test_a_shifts_total_is_base_plus_commission_plus_bonuses(bar, tips, seconds, day, ranked):
    pay = shift_pay(
        SETTINGS,
        sales={"bar": bar, "tips": tips},
        worked_seconds=seconds,
        local_date=day,
        hourly_rate=10000,
        rank=SETTINGS.ranks[0] if ranked else None,
    )
    assert pay.total == pay.base_pay + pay.commission + pay.bonus_total
    assert pay.bonus_total == sum(b.amount for b in pay.bonuses)
    assert pay.commission_base == bar and pay.sales_total == bar + tips
    assert ("weekend" in {b.bonus for b in pay.bonuses}) == (day.weekday() >= 5)


def test_a_shift_by_hand_with_rank_and_bonuses():
    pay = shift_pay(
        SETTINGS,
        sales={"bar": 120000, "tips": 10000},
        worked_seconds=5400,  # 1.5 h x 100.00
        local_date=date(2026, 11, 7),  # a Saturday
        hourly_rate=10000,
        rank=SETTINGS.ranks[0],
    )
    # 50000 x 3% + 70000 x 5% = 1500 + 3500; weekend 5000; big 2.5% of 120000 = 3000; rank 1% = 1200.
    assert (pay.base_pay, pay.commission, pay.bonus_total, pay.total) == (15000, 5000, 9200, 29200)


def tenant_yaml(rates: str) -> str:
    return textwrap.dedent(
        """\
        id: crew
        bot: {token: "5:abc"}
        features:
          shifts:
            commission:
              mode: flat
              rates:
        """
    ) + textwrap.indent(textwrap.dedent(rates), " " * 8)


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        (
            "- {from: 0, to: 50000, percent: 3}\n- {from: 60000, percent: 5}\n",
            "gap between [0, 50000) and [60000, ∞): sales of 50000 up to 60000 fall in no interval",
        ),
        (
            "- {from: 0, to: 60000, percent: 3}\n- {from: 50000, percent: 5}\n",
            "overlap between [0, 60000) and [50000, ∞): sales of 50000 up to 60000 fall in both",
        ),
        ("- {from: 100, percent: 3}\n", "the first interval [100, ∞) must start at 0"),
        ("- {from: 0, to: 500, percent: 3}\n", "the last interval [0, 500) must be open-ended"),
        ("- {from: 0, to: 0, percent: 3}\n- {from: 0, percent: 1}\n", "interval [0, 0) is empty"),
    ],
)
def test_a_bad_rate_table_is_a_yaml_error_naming_the_intervals(rates, message):
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(tenant_yaml(rates), "tenants/crew.yaml", build_plugin_manager())
    text = str(caught.value)
    assert message in text, text
    assert "tenants/crew.yaml:7: features.shifts.commission.rates" in text, text


def test_other_bad_settings_are_named():
    bad = tenant_yaml("- {from: 0, percent: 7.125}\n")
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(bad, "tenants/crew.yaml", build_plugin_manager())
    assert "7.125 has more than two decimals" in str(caught.value)
