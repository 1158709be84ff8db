"""Phone numbers parsed and normalised to E.164 with ``phonenumbers`` (libphonenumber's data).

E.164 (ITU-T): ``+`` then the country calling code and the national number,
at most 15 digits, no spaces: ``+79990001122``. A number written without a
country code is read in a region (ISO 3166-1 alpha-2, ``RU``); see
:func:`phone_region` for the tenant's.
"""

from __future__ import annotations

import re

import phonenumbers
from babel.core import get_global

__all__ = ["InvalidPhoneNumber", "normalize_phone", "phone_region"]

MAX_PHONE_INPUT = 64
"""Longest text read as a phone number (characters); the longest E.164 number has 16."""

_DIGITS_ONLY = re.compile(r"[\d\s().-]+")


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number.

    Attributes:
        text: what was given.
        reason: plain words, e.g. "not a valid number for its country".
    """

    def __init__(self, text: str, reason: str):
        self.text = text
        self.reason = reason
        super().__init__(f"{text!r} is not a phone number: {reason}")


def normalize_phone(text: str, region: str | None) -> str:
    """Parse a phone number as people type or share it and return it in E.164.

    Accepts separators and a national trunk prefix (``+7 (999) 000-11-22``,
    ``8 999 000 11 22`` in ``RU``), and the digits-only international form that
    Telegram's shared contacts carry (``79990001122``, Bot API
    ``Contact.phone_number``) whatever the region.

    Args:
        text: the number as given.
        region: ISO 3166-1 alpha-2 region for numbers without a country code
            (``RU``); None accepts only international numbers.

    Returns:
        The number in E.164, e.g. ``+79990001122``.

    Raises:
        InvalidPhoneNumber: empty, too long, not parseable, or not a valid
            number of its country (libphonenumber's metadata).
    """
    raw = (text or "").strip()
    if not raw:
        raise InvalidPhoneNumber(text, "empty")
    if len(raw) > MAX_PHONE_INPUT:
        raise InvalidPhoneNumber(raw[:MAX_PHONE_INPUT] + "...", "too long")
    candidates = [(raw, region)]
    if not raw.startswith("+") and _DIGITS_ONLY.fullmatch(raw):
        # Telegram's shared contacts are international numbers without the "+".
        candidates.append(("+" + re.sub(r"\D", "", raw), None))
    reason = "not a valid number for its country"
    for candidate, candidate_region in candidates:
        try:
            number = phonenumbers.parse(candidate, candidate_region)
        except phonenumbers.NumberParseException as exc:
            reason = _parse_reason(exc)
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        reason = "not a valid number for its country"
    raise InvalidPhoneNumber(raw, reason)


def _parse_reason(exc: phonenumbers.NumberParseException) -> str:
    return {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "no known country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "not a number")


def phone_region(timezone: str, locale: str) -> str | None:
    """The region numbers without a country code are read in, for a tenant.

    The territory of the tenant's time zone (CLDR ``zone_territories``:
    ``Europe/Moscow`` is ``RU``), since a business's customers mostly call
    from where it is; for zones of no single country (``UTC``), the likely
    territory of its locale (CLDR likely subtags: ``ru`` is ``RU``, ``en`` ``US``).

    Args:
        timezone: IANA zone name (``TenantConfig.timezone``).
        locale: locale identifier (``TenantConfig.locale``).

    Returns:
        An ISO 3166-1 alpha-2 code, or None when neither names a country.
    """
    territory = get_global("zone_territories").get(timezone)
    if territory and territory.isalpha() and territory != "ZZ":
        return territory
    likely = get_global("likely_subtags").get(locale.replace("-", "_").split("_")[0], "")
    parts = likely.split("_")
    return next((p for p in parts[1:] if len(p) == 2 and p.isalpha() and p != "ZZ"), None)
