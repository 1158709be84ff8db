"""Helpers the service modules share: the clock, a local day's UTC bounds, row -> ``BookingView``, ``when:`` fields."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from core import Tenant
from core.errors import BadRequest
from plugins.booking.config import BookingSettings
from plugins.booking.views import BookingView


def _view(tenant: Tenant, row: asyncpg.Record) -> BookingView:
    return BookingView(
        id=row["id"],
        status=row["status"],
        user_id=row["user_id"],
        customer_name=row["customer_name"],
        phone=row["phone"],
        party_size=row["party_size"],
        service=row["service_code"],
        resources=list(row["resources"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        local_start=tenant.local_time(row["starts_at"]).strftime("%Y-%m-%d %H:%M"),
        price=row["price"],
        comment=row["comment"],
        source=row["source"],
        created_at=row["created_at"],
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _day_bounds(tenant: Tenant, day: date) -> tuple[datetime, datetime]:
    """Start and end (UTC) of local ``day``.

    Raises:
        BadRequest: ``booking.date_out_of_range``, the day's bounds fall outside
            Python's datetime range (years 1-9999), as the first and last days
            of that range do in most zones.
    """
    try:
        start = datetime.combine(day, datetime.min.time(), tzinfo=tenant.tz)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tenant.tz)
        return start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise BadRequest(
            "booking.date_out_of_range",
            f"{day.isoformat()} is too close to the ends of the calendar (years 1 and 9999)",
        ) from None


def _entity(settings: BookingSettings, source: str) -> dict[str, Any]:
    """Fields a tenant's ``when:`` conditions may test."""
    return {"kind": settings.kind, "source": source}
