"""Pay rules without I/O: bonus conditions, rank tables, base pay rounding, the commission's parts,
the state settings against the machine, and the settings reference in the docs."""

from __future__ import annotations

import re
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config.loader import load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager
from core.storage.statuses import StatusMachine, StatusMachineSpec
from plugins.shifts.config import BonusRule, CommissionSettings, RankSpec, ShiftsSettings
from plugins.shifts.machine import DEFAULT_MACHINE, SHIFT_ENTITY, state_problems
from plugins.shifts.service.commission import (
    base_pay,
    bonuses_for,
    commission,
    commission_parts,
    round_half_up,
    shift_pay,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "shifts.md"
WEDNESDAY, SATURDAY, NEW_YEAR = date(2026, 12, 2), date(2026, 12, 5), date(2026, 12, 31)


def rules(**extra: object) -> ShiftsSettings:
    return msgspec.convert(
        {
            "ranks": [
                {"id": "silver", "name": "Silver", "threshold": 100},
                {"id": "gold", "name": "Gold", "threshold": 200},
            ],
            "holidays": ["2026-12-31"],
            "bonuses": [
                {"id": "holiday", "name": "Holiday", "amount": 1000, "holidays": True},
                {"id": "fixed_day", "name": "Opening", "amount": 300, "dates": ["2026-12-02"]},
                {
                    "id": "gold_weekend",
                    "name": "Gold weekend",
                    "amount": 700,
                    "weekdays": ["sat"],
                    "dates": ["2026-12-31"],
                    "ranks": ["gold"],
                    "min_sales": 5000,
                },
                {"id": "always", "name": "Always", "percent": 0.5},
            ],
            **extra,
        },
        ShiftsSettings,
    )


@pytest.mark.parametrize(
    ("day", "sales", "rank", "expected"),
    [
        # Wednesday 2 December: only its date rule and the unconditional one.
        (WEDNESDAY, 10000, "gold", {"fixed_day": 300, "always": 50}),
        # A holiday; also one of gold_weekend's dates (day conditions are alternatives).
        (NEW_YEAR, 10000, "gold", {"holiday": 1000, "gold_weekend": 700, "always": 50}),
        # Saturday, gold, but sales under min_sales: every other condition must hold.
        (SATURDAY, 4999, "gold", {"always": 25}),
        # Saturday with the sales, but silver: the rank condition fails.
        (SATURDAY, 5000, "silver", {"always": 25}),
        (SATURDAY, 5000, None, {"always": 25}),
        (SATURDAY, 5000, "gold", {"gold_weekend": 700, "always": 25}),
    ],
)
def test_bonus_conditions(day, sales, rank, expected):
    settings_ = rules()
    lines = bonuses_for(
        settings_, local_date=day, sales_total=sales, base=sales, rank=settings_.rank(rank)
    )
    assert {line.bonus: line.amount for line in lines} == expected


def test_a_bonus_naming_an_unknown_rank_is_refused():
    with pytest.raises(msgspec.ValidationError, match="names unknown rank 'platinum'"):
        msgspec.convert(
            {"bonuses": [{"id": "b", "name": "B", "amount": 1, "ranks": ["platinum"]}]},
            ShiftsSettings,
        )
    with pytest.raises(ValueError, match="exactly one of amount or percent"):
        BonusRule(id="b", name="B", amount=1, percent=1.0)


def test_a_ranks_own_rates_replace_the_table_and_its_bonus_percent_is_added():
    settings_ = msgspec.convert(
        {
            "commission": {"mode": "flat", "rates": [{"from": 0, "percent": 3}]},
            "ranks": [
                {
                    "id": "gold",
                    "name": "Gold",
                    "threshold": 1,
                    "bonus_percent": 1.5,
                    "rates": [
                        {"from": 0, "to": 50000, "percent": 4},
                        {"from": 50000, "percent": 6},
                    ],
                }
            ],
        },
        ShiftsSettings,
    )
    common = {"sales": {"total": 60000}, "worked_seconds": 0, "local_date": WEDNESDAY}
    plain = shift_pay(settings_, hourly_rate=0, **common)
    gold = shift_pay(settings_, hourly_rate=0, rank=settings_.ranks[0], **common)
    assert (plain.commission, plain.rate_bp, plain.bonuses) == (1800, 300, [])
    # Flat on the rank's table: 60000 is in [50000, ∞) at 6 %; 1.5 % of 60000 = 900.
    assert (gold.commission, gold.rate_bp, gold.rank) == (3600, 600, "gold")
    assert [(b.bonus, b.amount) for b in gold.bonuses] == [("rank:gold", 900)]
    assert gold.total == 3600 + 900


def test_base_pay_is_rounded_half_up_once_per_shift():
    # 100.00 per hour: a minute is 166.666... kopecks -> 167; 18 s is 50 exactly.
    assert base_pay(10000, 60) == 167
    assert base_pay(10000, 18) == 50
    assert base_pay(10000, 9) == 25  # 25.0
    assert base_pay(333, 5400) == 500  # 499.5 -> 500, half up
    assert base_pay(10000, -5) == 0


def test_a_bad_rank_table_is_a_yaml_error_naming_the_intervals():
    text = textwrap.dedent(
        """\
        id: crew
        bot: {token: "5:abc"}
        features:
          shifts:
            ranks:
              - id: gold
                name: Gold
                threshold: 100
                rates:
                  - {from: 0, to: 500, percent: 4}
                  - {from: 700, percent: 6}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_tenant_text(text, "tenants/crew.yaml", build_plugin_manager())
    message = str(caught.value)
    assert "features.shifts.ranks" in message, message
    assert (
        "gap between [0, 500) and [700, ∞): sales of 500 up to 700 fall in no interval" in message
    )


@pytest.mark.parametrize("mode", ["flat", "progressive"])
def test_the_commission_parts_by_hand(mode):
    table = msgspec.convert(
        {
            "rates": [
                {"from": 50000, "to": 100000, "percent": 5},
                {"from": 0, "to": 50000, "percent": 3},
                {"from": 100000, "percent": 7.25},
            ]
        },
        CommissionSettings,
    ).rates
    parts = commission_parts(120001, table, mode)
    if mode == "flat":
        assert [(p.from_, p.to, p.base, p.exact) for p in parts] == [
            (100000, None, 120001, "8700.0725")
        ]
        assert commission(120001, table, mode) == 8700
    else:
        assert [(p.from_, p.to, p.percent, p.base, p.exact) for p in parts] == [
            (0, 50000, 3, 50000, "1500"),
            (50000, 100000, 5, 50000, "2500"),
            (100000, None, 7.25, 20001, "1450.0725"),
        ]
        assert commission(120001, table, mode) == 5450
    assert msgspec.to_builtins(parts[0])["from"] == parts[0].from_


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 10**7), max_size=4, unique=True),
    st.lists(st.integers(0, 10000), min_size=5, max_size=5),
    st.integers(0, 10**8),
    st.sampled_from(["flat", "progressive"]),
)
def test_the_parts_add_up_to_the_commission(cuts, percents, base, mode):
    bounds = [0, *sorted(cuts)]
    table = msgspec.convert(
        {
            "rates": [
                {"from": lower, "to": upper, "percent": rate / 100}
                for lower, upper, rate in zip(bounds, [*bounds[1:], None], percents, strict=False)
            ]
        },
        CommissionSettings,
    ).rates
    parts = commission_parts(base, table, mode)
    assert sum(p.base for p in parts) == base or (base == 0 and parts[0].base == 0)
    exact = sum(Decimal(p.exact) for p in parts)
    # The commission is the exact sum rounded half up once.
    assert commission(base, table, mode) == round_half_up(int(exact * 10000), 10000)


def machine(**spec: object) -> StatusMachine:
    return StatusMachine(SHIFT_ENTITY, msgspec.convert(spec, StatusMachineSpec))


def test_state_settings_are_checked_against_the_machine():
    assert state_problems(ShiftsSettings(), StatusMachine(SHIFT_ENTITY, DEFAULT_MACHINE)) == []
    renamed = machine(
        initial="on_shift",
        transitions={
            "on_shift": [{"to": "handed_in"}],
            "handed_in": [{"to": "ok"}, {"to": "bounced"}],
            "ok": [{"to": "settled"}],
            "bounced": [{"to": "handed_in"}],
        },
    )
    problems = dict(state_problems(ShiftsSettings(), renamed))
    assert problems["features.shifts.closed_status"].startswith(
        "'submitted' is not a state of statuses.shift (on_shift, handed_in, ok, bounced, settled)"
    )
    assert set(problems) == {
        "features.shifts.closed_status",
        "features.shifts.approved_status",
        "features.shifts.rejected_status",
        "features.shifts.counted_statuses",
        "features.shifts.correctable_statuses",
    }
    fitting = msgspec.convert(
        {
            "closed_status": "handed_in",
            "approved_status": "ok",
            "rejected_status": "bounced",
            "counted_statuses": ["ok", "settled"],
            "correctable_statuses": ["handed_in", "ok"],
        },
        ShiftsSettings,
    )
    assert state_problems(fitting, renamed) == []
    backwards = msgspec.structs.replace(fitting, approved_status="settled")
    assert state_problems(backwards, renamed) == [
        (
            "features.shifts.approved_status",
            "statuses.shift has no transition 'handed_in' -> 'settled'",
        )
    ]


@pytest.mark.parametrize(
    ("prefix", "struct"),
    [("", ShiftsSettings), ("commission.", CommissionSettings), ("", RankSpec), ("", BonusRule)],
)
def test_every_setting_is_in_the_docs(prefix, struct):
    text = DOC.read_text(encoding="utf-8")
    for field in msgspec.structs.fields(struct):
        name = field.encode_name
        assert re.search(rf"`{re.escape(prefix + name)}`", text), (
            f"{DOC.name} lacks `{prefix}{name}`"
        )
