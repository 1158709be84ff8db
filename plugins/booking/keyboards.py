"""Inline keyboards and callback data of the booking bot.

Callback data are aiogram ``CallbackData`` factories with short prefixes, so
each packs to well under the Bot API's 64-byte ``callback_data`` limit (the
longest, :class:`StatusAction`, is ``bka:<id>:<status>`` with a status of at
most 40 characters: under 60 bytes). Times travel as minutes since the Unix
epoch (UTC), which stays unambiguous across days and DST changes.

Callback data come back from the client, so a press can carry anything: ids
and times are bounded here (a bigint id, a minute within Python's datetime
range), and data outside the bounds match no handler of their prefix; the
bot's catch-all for ``bk...:`` answers them as an outdated button.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from core import Tenant
from core.kit import format_datetime, weekday_names
from plugins.booking.config import BookingSettings
from plugins.booking.slots import day_problem

__all__ = [
    "CalendarAction",
    "CancelBooking",
    "ConfirmFlow",
    "PickParty",
    "PickService",
    "PickStaff",
    "PickTime",
    "Rate",
    "StatusAction",
    "calendar_keyboard",
    "cancel_keyboard",
    "confirm_keyboard",
    "epoch_minutes",
    "from_epoch_minutes",
    "party_keyboard",
    "phone_keyboard",
    "rating_keyboard",
    "services_keyboard",
    "staff_keyboard",
    "status_keyboard",
    "times_keyboard",
]


_LAST_MINUTE = int(datetime(9999, 12, 31, 23, 59, tzinfo=UTC).timestamp()) // 60
"""The last minute since the epoch that :func:`from_epoch_minutes` can turn into a datetime."""

BookingId = Annotated[int, Field(ge=1, le=2**63 - 1)]
"""A booking id in callback data: ``bookings.id`` is a PostgreSQL bigint."""

EpochMinutes = Annotated[int, Field(ge=0, le=_LAST_MINUTE)]
"""A start time in callback data, minutes since the Unix epoch (UTC), up to year 9999."""


class CalendarAction(CallbackData, prefix="bkcal"):
    """A calendar press: ``action`` ``d`` (day ``YYYYMMDD``), ``m`` (month ``YYYYMM``) or ``x`` (no-op)."""

    action: str
    value: str


class PickTime(CallbackData, prefix="bkt"):
    """A start time, in minutes since the epoch (UTC)."""

    at: EpochMinutes


class PickParty(CallbackData, prefix="bkp"):
    """A party size."""

    size: int


class PickService(CallbackData, prefix="bks"):
    """A service id."""

    code: str


class PickStaff(CallbackData, prefix="bkst"):
    """A staff id, ``*`` for anyone free."""

    code: str


class ConfirmFlow(CallbackData, prefix="bkc"):
    """The final Confirm (``ok`` true) or Cancel of the /book flow."""

    ok: bool


class StatusAction(CallbackData, prefix="bka"):
    """An admin's status button: move booking ``booking_id`` to ``to``."""

    booking_id: BookingId
    to: str


class CancelBooking(CallbackData, prefix="bkx"):
    """A customer's Cancel button in /mybookings."""

    booking_id: BookingId


class Rate(CallbackData, prefix="bkr"):
    """A 1-5 rating of a completed booking."""

    booking_id: BookingId
    rating: int


def epoch_minutes(moment: datetime) -> int:
    """Minutes since the Unix epoch of an aware datetime."""
    return int(moment.timestamp()) // 60


def from_epoch_minutes(minutes: int) -> datetime:
    """The aware UTC datetime of :func:`epoch_minutes`."""
    return datetime.fromtimestamp(minutes * 60, UTC)


def calendar_keyboard(
    tenant: Tenant, settings: BookingSettings, year: int, month: int, now: datetime
) -> InlineKeyboardMarkup:
    """A month grid: bookable days are buttons, others a dot; arrows move between months."""
    builder = InlineKeyboardBuilder()
    noop = CalendarAction(action="x", value="-").pack()
    builder.button(text=f"{month:02d}.{year}", callback_data=noop)
    for name in weekday_names(tenant.locale, "short", context="stand-alone"):
        builder.button(text=name, callback_data=noop)
    weeks = calendar.Calendar().monthdayscalendar(year, month)
    for week in weeks:
        for number in week:
            if number == 0:
                builder.button(text=" ", callback_data=noop)
                continue
            day = date(year, month, number)
            if day_problem(settings, tenant.tz, day, now) is None:
                builder.button(
                    text=str(number),
                    callback_data=CalendarAction(action="d", value=f"{day:%Y%m%d}"),
                )
            else:
                builder.button(text="·", callback_data=noop)
    first = date(year, month, 1)
    previous = (first - timedelta(days=1)).replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    today = now.astimezone(tenant.tz).date()
    last = today + timedelta(days=settings.days_ahead)
    navigation = 0
    if previous >= today.replace(day=1):
        builder.button(text="‹", callback_data=CalendarAction(action="m", value=f"{previous:%Y%m}"))
        navigation += 1
    if following <= last:
        builder.button(
            text="›", callback_data=CalendarAction(action="m", value=f"{following:%Y%m}")
        )
        navigation += 1
    builder.adjust(1, 7, *([7] * len(weeks)), *([navigation] if navigation else []))
    return builder.as_markup()


def times_keyboard(
    tenant: Tenant, starts: Sequence[datetime], *, with_date: bool = False
) -> InlineKeyboardMarkup:
    """One button per free start time, four per row."""
    builder = InlineKeyboardBuilder()
    for start in starts:
        pattern = "dd.MM HH:mm" if with_date else "HH:mm"
        label = format_datetime(start, tenant.locale, tz=tenant.tz, format=pattern)
        builder.button(text=label, callback_data=PickTime(at=epoch_minutes(start)))
    builder.adjust(4)
    return builder.as_markup()


def party_keyboard(largest: int) -> InlineKeyboardMarkup:
    """Party sizes 1..``largest``, five per row."""
    builder = InlineKeyboardBuilder()
    for size in range(1, largest + 1):
        builder.button(text=str(size), callback_data=PickParty(size=size))
    builder.adjust(5)
    return builder.as_markup()


def services_keyboard(
    tenant: Tenant, settings: BookingSettings, codes: Sequence[str], price_text: dict[str, str]
) -> InlineKeyboardMarkup:
    """One button per service that fits, with its duration and price (``booking.service_button``)."""
    builder = InlineKeyboardBuilder()
    for code in codes:
        spec = settings.service(code)
        if spec is not None:
            builder.button(
                text=tenant.text(
                    "booking.service_button",
                    service=spec.name,
                    minutes=spec.duration_minutes,
                    price=price_text[code],
                ),
                callback_data=PickService(code=code),
            )
    builder.adjust(1)
    return builder.as_markup()


def staff_keyboard(
    settings: BookingSettings, codes: Sequence[str], anyone: str
) -> InlineKeyboardMarkup:
    """One button per free staff member, plus "anyone"."""
    builder = InlineKeyboardBuilder()
    builder.button(text=anyone, callback_data=PickStaff(code="*"))
    for code in codes:
        member = settings.staff_member(code)
        builder.button(text=member.name if member else code, callback_data=PickStaff(code=code))
    builder.adjust(1)
    return builder.as_markup()


def phone_keyboard(label: str) -> ReplyKeyboardMarkup:
    """A one-time reply keyboard with a "share my phone" (request_contact) button."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=label, request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def confirm_keyboard(confirm: str, cancel: str) -> InlineKeyboardMarkup:
    """Confirm / Cancel of the /book summary."""
    builder = InlineKeyboardBuilder()
    builder.button(text=confirm, callback_data=ConfirmFlow(ok=True))
    builder.button(text=cancel, callback_data=ConfirmFlow(ok=False))
    builder.adjust(2)
    return builder.as_markup()


def status_keyboard(
    booking_id: int, targets: Sequence[tuple[str, str]]
) -> InlineKeyboardMarkup | None:
    """An admin's buttons: one per allowed ``(status, label)``; None when there are none."""
    if not targets:
        return None
    builder = InlineKeyboardBuilder()
    for status, label in targets:
        builder.button(text=label, callback_data=StatusAction(booking_id=booking_id, to=status))
    builder.adjust(2)
    return builder.as_markup()


def cancel_keyboard(booking_id: int, label: str) -> InlineKeyboardMarkup:
    """A customer's Cancel button for one booking."""
    builder = InlineKeyboardBuilder()
    builder.button(text=label, callback_data=CancelBooking(booking_id=booking_id))
    return builder.as_markup()


def rating_keyboard(booking_id: int) -> InlineKeyboardMarkup:
    """Buttons 1..5 for rating a completed booking."""
    builder = InlineKeyboardBuilder()
    for rating in range(1, 6):
        builder.button(text="★" * rating, callback_data=Rate(booking_id=booking_id, rating=rating))
    builder.adjust(5)
    return builder.as_markup()
