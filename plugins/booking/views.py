"""What the booking service takes, returns and refuses with: the Structs, ``SlotTaken``, ``settings_of``.

Kept outside :mod:`plugins.booking.service` so that :mod:`plugins.booking.notify`
reads the shapes without importing the service (which calls notify for reminders).
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from core import Tenant
from core.errors import Conflict
from plugins.booking.config import BookingSettings

__all__ = [
    "PLUGIN",
    "AvailabilityResult",
    "BlockView",
    "BookingView",
    "DailyStats",
    "FreeSlot",
    "NewBooking",
    "SlotTaken",
    "settings_of",
]

PLUGIN = "booking"


class SlotTaken(Conflict):
    """409 ``booking.slot_taken``: the time is no longer free.

    Attributes:
        alternatives: the nearest free starts (UTC), also the ``alternatives``
            member of the problem body (ISO 8601).
    """

    def __init__(self, alternatives: list[datetime]):
        self.alternatives = alternatives
        super().__init__(
            "booking.slot_taken",
            "this time was just taken; pick one of the alternatives",
            alternatives=[a.isoformat() for a in alternatives],
        )


class NewBooking(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A booking request (API body and the bot's final step).

    Attributes:
        starts_at: start, ISO 8601 with a UTC offset, on a slot boundary.
        customer_name: 1-100 characters.
        phone: a phone number, with or without the country code (read in the
            tenant's region, ``core.kit.phone_region``); stored in E.164.
        party_size: guests (``kind: tables``), default 1.
        service: service id (``kind: services``).
        staff: staff id (``kind: services``); None picks any free one.
        table: table id (``kind: tables``); None picks the best free fit.
        comment: free text up to 500 characters.
    """

    starts_at: datetime
    customer_name: str
    phone: str
    party_size: int = 1
    service: str | None = None
    staff: str | None = None
    table: str | None = None
    comment: str = ""


class BookingView(msgspec.Struct):
    """A booking as the API returns it and events carry it.

    Attributes:
        id: booking id.
        status: current status.
        user_id: Telegram user id of the customer, None for staff-made bookings.
        customer_name / phone / comment: as given.
        party_size: guests (1 for services).
        service: service id or None.
        resources: table or staff ids it holds.
        starts_at / ends_at: UTC, without buffers.
        local_start: start in the tenant's zone, ``YYYY-MM-DD HH:MM``.
        price: minor currency units.
        source: ``bot``, ``api`` or ``webapp``.
        created_at: UTC.
    """

    id: int
    status: str
    user_id: int | None
    customer_name: str
    phone: str
    party_size: int
    service: str | None
    resources: list[str]
    starts_at: datetime
    ends_at: datetime
    local_start: str
    price: int
    comment: str
    source: str
    created_at: datetime


class FreeSlot(msgspec.Struct):
    """A free start time.

    Attributes:
        starts_at / ends_at: UTC, without buffers.
        local_time: ``HH:MM`` in the tenant's zone.
        resources: the tables or staff a booking would get (best fit).
    """

    starts_at: datetime
    ends_at: datetime
    local_time: str
    resources: list[str]


class AvailabilityResult(msgspec.Struct):
    """Free start times of one day.

    Attributes:
        date: the local date.
        timezone: the tenant's IANA zone.
        closed: ``closed`` when the place does not open that day, else None.
        slots: free starts, ascending.
    """

    date: date
    timezone: str
    closed: str | None
    slots: list[FreeSlot]


class DailyStats(msgspec.Struct):
    """Counts of one local day (``GET /stats``).

    Attributes:
        date: the local date.
        bookings: bookings starting that day, in any status.
        covers: guests of the bookings that still hold their time (released
            statuses excluded).
        no_shows: bookings in ``no_show_status``.
        per_status: status -> number of bookings.
    """

    date: date
    bookings: int
    covers: int
    no_shows: int
    per_status: dict[str, int]


class BlockView(msgspec.Struct):
    """An admin's block of a resource or the whole place.

    Attributes:
        id: block id.
        resource: the table or staff id, None for the whole place.
        starts_at / ends_at: UTC.
        reason: as given, up to 200 characters.
        created_by: ``api`` or ``telegram:<admin id>``.
    """

    id: int
    resource: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str


def settings_of(tenant: Tenant) -> BookingSettings:
    """The tenant's validated booking settings."""
    return tenant.settings_for(PLUGIN)
