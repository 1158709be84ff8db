"""Money in minor units, formatted per currency and locale (Babel, CLDR data).

Prices, totals and fees are kept as integers of the currency's minor unit
(kopecks, cents; yen have none). How many digits a currency's minor unit has
comes from CLDR's currency data through Babel (ISO 4217: RUB 2, USD 2, JPY 0,
KWD 3), so ``15050`` is 150.50 RUB but 15,050 JPY.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    is_currency,
)

__all__ = ["format_money", "minor_unit_digits"]

_NBSP = "\u00a0"


def minor_unit_digits(currency: str) -> int:
    """Digits of ``currency``'s minor unit (CLDR): RUB 2, USD 2, JPY 0, KWD 3.

    Raises:
        ValueError: ``currency`` is not an ISO 4217 code Babel knows.
    """
    if not is_currency(currency):
        raise ValueError(f"unknown currency {currency!r} (ISO 4217 code expected)")
    return get_currency_precision(currency)


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """Format an amount in minor units the way ``locale`` writes ``currency``.

    ``format_money(15050, "RUB", "ru")`` is ``"150,50 ₽"``, in ``en``
    ``"RUB 150.50"``; ``format_money(1500, "JPY", "en")`` is ``"¥1,500"``;
    negative amounts carry the locale's minus sign (``"-$150.50"``). Spaces
    inside the result are no-break spaces (U+00A0), as CLDR writes them.

    Args:
        amount_minor: the amount in the currency's minor unit (any size, any sign).
        currency: ISO 4217 code (``RUB``, ``USD``, ``JPY``).
        locale: a CLDR locale identifier (``ru``, ``en``, ``en_GB``).

    Returns:
        The formatted amount with the locale's symbol, separators and pattern.

    Raises:
        ValueError: unknown currency, or a locale Babel does not know.
        TypeError: ``amount_minor`` is not an int.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amount_minor must be an int of minor units, got {amount_minor!r}")
    digits = minor_unit_digits(currency)
    value = Decimal(amount_minor).scaleb(-digits)
    text = format_currency(value, currency, locale=locale)
    return _space_symbol(text, get_currency_symbol(currency, locale=locale))


def _space_symbol(text: str, symbol: str) -> str:
    """Apply CLDR ``currencySpacing``, which Babel leaves out.

    CLDR (numbers.json, currencySpacing): where a currency symbol whose
    character next to the number is neither a symbol nor a space (a letter,
    as in ``RUB``) touches a digit, insert a no-break space, so ``RUB120.00``
    becomes ``RUB 120.00`` while ``$120.00`` stays as it is.
    """
    start = text.find(symbol)
    if not symbol or start < 0:
        return text
    end = start + len(symbol)

    def spaced(char: str) -> bool:
        return unicodedata.category(char)[0] not in ("S", "Z")

    if end < len(text) and text[end].isdigit() and spaced(symbol[-1]):
        text = text[:end] + _NBSP + text[end:]
    if start > 0 and text[start - 1].isdigit() and spaced(symbol[0]):
        text = text[:start] + _NBSP + text[start:]
    return text
