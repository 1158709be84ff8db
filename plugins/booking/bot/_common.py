"""Helpers the booking bot's handlers share: the clock, a local date's text, a refused move's text."""

from __future__ import annotations

from datetime import UTC, date, datetime

from core import Tenant, TransitionError
from core.kit import format_date
from plugins.booking import notify


def _now() -> datetime:
    return datetime.now(UTC)


def _day(tenant: Tenant, day: date) -> str:
    """A local date as the booking texts show it: ``DD.MM.YYYY``."""
    return format_date(day, tenant.locale, format="dd.MM.yyyy")


def _move_refused(tenant: Tenant, booking_id: int, exc: TransitionError) -> str:
    """``booking.not_allowed`` for a move the machine refused, with the states' labels."""
    reason = tenant.text(
        "booking.move_refused",
        id=booking_id,
        current=notify.status_label(tenant, exc.current),
        target=notify.status_label(tenant, exc.target),
    )
    return tenant.text("booking.not_allowed", detail=reason)
