"""Dates, times and weekday names in a locale and time zone (Babel, CLDR data).

Moments are aware datetimes (the runtime keeps UTC); they are shown in the
tenant's zone (``TenantConfig.timezone``) and locale (``TenantConfig.locale``).
``format`` is a CLDR width (``short``, ``medium``, ``long``, ``full``) or a
CLDR pattern (``dd.MM.yyyy HH:mm``; Unicode LDML, "Date Format Patterns").
"""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo

from babel import dates as babel_dates

__all__ = ["format_date", "format_datetime", "format_time", "weekday_name", "weekday_names"]


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive; pass an aware datetime (UTC)")
    return moment


def format_date(
    value: date | datetime, locale: str, *, tz: tzinfo | None = None, format: str = "medium"
) -> str:
    """A date, or the local date of a moment in ``tz``.

    ``format_date(date(2026, 11, 24), "ru")`` is ``"24 нояб. 2026 г."``,
    ``format="dd.MM.yyyy"`` gives ``"24.11.2026"``.

    Raises:
        ValueError: ``value`` is a naive datetime.
    """
    if isinstance(value, datetime):
        moment = _aware(value)
        value = (moment.astimezone(tz) if tz else moment).date()
    return babel_dates.format_date(value, format=format, locale=locale)


def format_time(
    value: datetime | time, locale: str, *, tz: tzinfo | None = None, format: str = "short"
) -> str:
    """The local time of a moment in ``tz`` (``"19:00"`` in ``ru``, ``"7:00 PM"`` in ``en``).

    Raises:
        ValueError: ``value`` is a naive datetime.
    """
    if isinstance(value, datetime):
        value = _aware(value)
        if tz is not None:
            value = value.astimezone(tz)
    return babel_dates.format_time(value, format=format, locale=locale)


def format_datetime(
    moment: datetime, locale: str, *, tz: tzinfo | None = None, format: str = "medium"
) -> str:
    """A moment as a local date and time in ``tz``.

    Raises:
        ValueError: ``moment`` is naive.
    """
    moment = _aware(moment)
    if tz is not None:
        moment = moment.astimezone(tz)
    return babel_dates.format_datetime(moment, format=format, locale=locale)


def weekday_names(locale: str, width: str = "short", context: str = "format") -> list[str]:
    """The seven weekday names, Monday first (ISO 8601 order, ``date.weekday()`` indexes them).

    Args:
        locale: locale identifier.
        width: ``wide`` (Monday), ``abbreviated`` (Mon), ``short`` (Mo), ``narrow`` (M).
        context: ``format`` (inside a date) or ``stand-alone`` (a calendar header).

    Returns:
        ``["Mo", "Tu", ...]`` in ``en``, ``["пн", "вт", ...]`` in ``ru`` (width ``short``).
    """
    names = babel_dates.get_day_names(width, context=context, locale=locale)
    return [names[index] for index in range(7)]


def weekday_name(day: date, locale: str, width: str = "wide") -> str:
    """The weekday of ``day`` (``"Tuesday"``, ``"вторник"``)."""
    return weekday_names(locale, width)[day.weekday()]
