"""Settings of the booking plugin: the ``features.booking`` block of a tenant file."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Literal

import msgspec

__all__ = [
    "WEEKDAYS",
    "BookingSettings",
    "OpeningHours",
    "ServiceSpec",
    "StaffSpec",
    "TableSpec",
    "parse_hours",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Keys of ``opening_hours``, in ``date.weekday()`` order."""

_CODE = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
_HOURS = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_MINUTES = Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)]


class OpeningHours(msgspec.Struct, frozen=True):
    """Opening hours of one weekday, in the tenant's time zone.

    Attributes:
        opens: local opening time.
        closes_after_minutes: minutes from ``opens`` to closing (a closing time
            at or before the opening time means the next day, e.g. ``18:00-02:00``).
    """

    opens: time
    closes_after_minutes: int


def parse_hours(text: str) -> OpeningHours:
    """Parse ``"HH:MM-HH:MM"`` (local time; ``24:00`` is midnight at the end of the day).

    Raises:
        ValueError: not in that form.
    """
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"opening hours must look like '10:00-22:00', got {text!r}")
    open_h, open_m, close_h, close_m = (int(g) for g in match.groups())
    if close_h == 24 and close_m:
        raise ValueError(f"opening hours: 24:{close_m:02d} is not a time ({text!r})")
    start = open_h * 60 + open_m
    end = close_h * 60 + close_m
    if end <= start:
        end += 24 * 60
    return OpeningHours(opens=time(open_h, open_m), closes_after_minutes=end - start)


class TableSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A restaurant table (``kind: tables``).

    Attributes:
        id: short code shown to admins and used by the API (``t1``), 1-32 chars.
        seats: guests it seats, 1-100.
        zone: hall name (``hall``, ``terrace``), default ``""``.
        combinable_with: ids of tables it can be joined with for a larger party
            (the pair's seats add up), default none.
    """

    id: _CODE
    seats: Annotated[int, msgspec.Meta(ge=1, le=100)]
    zone: str = ""
    combinable_with: list[_CODE] = []


class StaffSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A staff member or other resource that serves one client at a time (``kind: services``).

    Attributes:
        id: short code (``anna``), 1-32 chars.
        name: shown to clients.
    """

    id: _CODE
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ServiceSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bookable service (``kind: services``).

    Attributes:
        id: short code (``haircut``), 1-32 chars.
        name: shown to clients.
        duration_minutes: how long the service takes, 5-1440 minutes.
        price: price in minor currency units (kopecks, cents), default 0.
        staff: ids of the staff who can do it; empty means every staff member.
    """

    id: _CODE
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    duration_minutes: Annotated[int, msgspec.Meta(ge=5, le=1440)]
    price: Annotated[int, msgspec.Meta(ge=0)] = 0
    staff: list[_CODE] = []


class BookingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``features.booking`` of a tenant file.

    Attributes:
        kind: ``tables`` (a restaurant: party size, tables) or ``services``
            (a salon: services done by staff). Default ``tables``.
        tables: the tables, for ``kind: tables``.
        services: the services, for ``kind: services``.
        staff: the staff, for ``kind: services``.
        opening_hours: weekday (``mon`` ... ``sun``) -> ``"HH:MM-HH:MM"`` in the
            tenant's time zone; a missing day is closed. Default every day
            ``10:00-22:00``. Bookings must end by closing time.
        closed_dates: local dates the place is closed (``2025-12-31``), default none.
        slot_step_minutes: distance between offered start times, 5-240, default 30.
        stay_minutes: how long a table is held for one booking (``kind: tables``),
            15-1440, default 120.
        buffer_before_minutes: extra time held before each booking (set-up),
            0-240, default 0.
        buffer_after_minutes: extra time held after each booking (cleaning),
            0-240, default 0.
        min_notice_minutes: earliest start is this long after now, 0-10080, default 60.
        days_ahead: latest bookable day, counted from today, 1-365, default 30.
        cancellation_cutoff_minutes: customers cannot cancel later than this
            long before the start, 0-10080, default 120 (admins always can).
        confirmation_required: new bookings stay in the initial status until an
            admin confirms them; when false they are confirmed at once. Default false.
        reminder_minutes: the reminder is sent this long before the start; 0
            disables reminders. 0-10080, default 120.
        max_party_size: largest party accepted (``kind: tables``), 1-500, default 20.
        max_active_bookings_per_user: most upcoming active bookings (not in a
            released or final status, such as cancelled, completed or no_show)
            one Telegram user may hold on one local day, 0-100, default 2;
            0 for no cap. Staff bookings through the API key have no user and
            no cap.
        currency: ISO 4217 code used to show prices, default ``RUB``.
        confirmed_status: status an admin's Confirm (or auto-confirmation) moves
            a booking to, default ``confirmed``.
        cancelled_status: status a cancellation or an admin's Reject moves a
            booking to, default ``cancelled``.
        completed_status: status after which the 1-5 rating request is sent,
            default ``completed``.
        no_show_status: status counted as a no-show in daily stats, default ``no_show``.
        released_statuses: statuses in which the booking no longer holds its
            time, default ``[cancelled, no_show]``.
    """

    kind: Literal["tables", "services"] = "tables"
    tables: list[TableSpec] = []
    services: list[ServiceSpec] = []
    staff: list[StaffSpec] = []
    opening_hours: dict[str, str] = msgspec.field(
        default_factory=lambda: dict.fromkeys(WEEKDAYS, "10:00-22:00")
    )
    closed_dates: list[date] = []
    slot_step_minutes: Annotated[int, msgspec.Meta(ge=5, le=240)] = 30
    stay_minutes: Annotated[int, msgspec.Meta(ge=15, le=1440)] = 120
    buffer_before_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 0
    buffer_after_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 0
    min_notice_minutes: Annotated[int, msgspec.Meta(ge=0, le=10080)] = 60
    days_ahead: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    cancellation_cutoff_minutes: Annotated[int, msgspec.Meta(ge=0, le=10080)] = 120
    confirmation_required: bool = False
    reminder_minutes: _MINUTES = 120
    max_party_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 20
    max_active_bookings_per_user: Annotated[int, msgspec.Meta(ge=0, le=100)] = 2
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "RUB"
    confirmed_status: str = "confirmed"
    cancelled_status: str = "cancelled"
    completed_status: str = "completed"
    no_show_status: str = "no_show"
    released_statuses: list[str] = msgspec.field(default_factory=lambda: ["cancelled", "no_show"])

    def __post_init__(self) -> None:
        """Cross-field checks msgspec cannot express.

        Raises:
            ValueError: unknown weekday or bad hours, duplicate or unknown ids,
                a kind without its resources.
        """
        for day, hours in self.opening_hours.items():
            if day not in WEEKDAYS:
                raise ValueError(
                    f"opening_hours: unknown weekday {day!r} (use {', '.join(WEEKDAYS)})"
                )
            parse_hours(hours)
        if self.kind == "tables":
            if not self.tables:
                raise ValueError("kind 'tables' needs at least one entry in tables")
            codes = [t.id for t in self.tables]
            _unique("tables", codes)
            for table in self.tables:
                for other in table.combinable_with:
                    if other not in codes or other == table.id:
                        raise ValueError(
                            f"tables: {table.id!r} is combinable with unknown table {other!r}"
                        )
        else:
            if not self.services or not self.staff:
                raise ValueError("kind 'services' needs at least one service and one staff member")
            staff_codes = [s.id for s in self.staff]
            _unique("staff", staff_codes)
            _unique("services", [s.id for s in self.services])
            for service in self.services:
                for member in service.staff:
                    if member not in staff_codes:
                        raise ValueError(f"services: {service.id!r} names unknown staff {member!r}")

    def hours_for(self, weekday: int) -> OpeningHours | None:
        """Opening hours for ``date.weekday()`` (0 = Monday), or None when closed."""
        text = self.opening_hours.get(WEEKDAYS[weekday])
        return parse_hours(text) if text else None

    def table(self, code: str) -> TableSpec | None:
        """The table with id ``code``, or None."""
        return next((t for t in self.tables if t.id == code), None)

    def service(self, code: str) -> ServiceSpec | None:
        """The service with id ``code``, or None."""
        return next((s for s in self.services if s.id == code), None)

    def staff_for(self, service: ServiceSpec) -> list[StaffSpec]:
        """Staff who can do ``service``, in declaration order."""
        return [s for s in self.staff if not service.staff or s.id in service.staff]

    def staff_member(self, code: str) -> StaffSpec | None:
        """The staff member with id ``code``, or None."""
        return next((s for s in self.staff if s.id == code), None)


def _unique(field: str, codes: list[str]) -> None:
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise ValueError(f"{field}: id {code!r} is used twice")
        seen.add(code)
