"""Amounts as people type them (bot) and as spreadsheets export them (import), to minor units.

``core.kit.money`` formats minor units; reading them back is this module's
only job. The number of decimals of a currency comes from the kit
(``minor_unit_digits``: CLDR via Babel).
"""

from __future__ import annotations

import re

from core.kit import minor_unit_digits

__all__ = ["parse_amount"]

# Digits grouped by spaces (regular, no-break, narrow no-break, thin), an
# apostrophe or nothing, then at most one decimal comma or point.
_AMOUNT = re.compile(r"^(\d{1,3}(?:[ \u00a0\u202f\u2009']\d{3})+|\d+)(?:[.,](\d+))?$")


def parse_amount(text: str, currency: str) -> int | None:
    """``"12 500,50"``, ``"12500.5"`` or ``"12500"`` (major units) as minor units of ``currency``.

    A trailing currency sign or code is ignored (``"1500 ₽"``, ``"1500 RUB"``).

    Returns:
        Minor units (``1250050`` for RUB), or None when ``text`` is not an
        amount: negative, more decimals than the currency has, letters, or
        over 10^12 minor units.
    """
    cleaned = text.strip().removesuffix(currency).rstrip(" \u00a0₽$€£¥").strip()
    match = _AMOUNT.match(cleaned)
    if not match:
        return None
    digits = minor_unit_digits(currency)
    whole = int(re.sub(r"\D", "", match.group(1)))
    fraction = match.group(2) or ""
    if len(fraction) > digits:
        return None
    value = whole * 10**digits + (int(fraction.ljust(digits, "0")) if digits else 0)
    return value if value <= 10**12 else None
