"""The shifts plugin: staff shifts, sales and commissions by sales range, ranks, bonuses, reports.

Enable it with ``features.shifts`` in a tenant file; see ``docs/plugins/shifts.md``.
Refusals are the core's errors (``core.errors``) with codes ``shifts.<what>``.
Only the settings, the machine and the pure commission module are imported
with the package; the services, the bot and the API are imported where used.
"""

from __future__ import annotations

from plugins.shifts.config import (
    BonusRule,
    CommissionSettings,
    RankSpec,
    RateBand,
    SalesCategory,
    ShiftsSettings,
    check_rate_table,
)
from plugins.shifts.machine import DEFAULT_MACHINE, SHIFT_ENTITY

__all__ = [
    "DEFAULT_MACHINE",
    "SHIFT_ENTITY",
    "BonusRule",
    "CommissionSettings",
    "RankSpec",
    "RateBand",
    "SalesCategory",
    "ShiftsSettings",
    "check_rate_table",
]
