"""SQL of the booking plugin: small named functions over asyncpg, unqualified table names.

Every function takes a connection whose ``search_path`` is the tenant schema
(``tenant.db.acquire()`` / ``tenant.db.transaction()``). Times are timestamptz
(UTC); money is bigint minor units.
"""

from __future__ import annotations

from plugins.booking.repository.blocks import (
    blocked_slot,
    delete_blocked_slot,
    insert_blocked_slot,
    list_blocked_slots,
)
from plugins.booking.repository.bookings import (
    _CREATE_BOOKING as _CREATE_BOOKING,
)
from plugins.booking.repository.bookings import (
    BOOKING_COLUMNS,
    active_bookings_of_user,
    booking_for_update,
    bookings_between,
    conflicting_bookings,
    create_booking,
    fetch_booking,
    insert_feedback,
    insert_history,
    mark_feedback_requested,
    mark_reminded,
    set_status,
    upcoming_for_user,
    user_bookings_lock,
)
from plugins.booking.repository.holds import (
    activate_holds,
    insert_holds,
    release_holds,
)
from plugins.booking.repository.resources import (
    resource_ids,
    resources_and_holds,
    sync_resources,
    sync_services,
)
from plugins.booking.repository.stats import (
    daily_stats,
    guests_upcoming,
    guests_visited,
)

__all__ = [
    "BOOKING_COLUMNS",
    "activate_holds",
    "active_bookings_of_user",
    "blocked_slot",
    "booking_for_update",
    "bookings_between",
    "conflicting_bookings",
    "create_booking",
    "daily_stats",
    "delete_blocked_slot",
    "fetch_booking",
    "guests_upcoming",
    "guests_visited",
    "insert_blocked_slot",
    "insert_feedback",
    "insert_history",
    "insert_holds",
    "list_blocked_slots",
    "mark_feedback_requested",
    "mark_reminded",
    "release_holds",
    "resource_ids",
    "resources_and_holds",
    "set_status",
    "sync_resources",
    "sync_services",
    "upcoming_for_user",
    "user_bookings_lock",
]
