"""Business rules of the booking plugin, shared by the bot and the HTTP API.

Every refusal is one of the core's errors (:mod:`core.errors`: ``BadRequest``,
``NotFound``, ``Conflict``) with a stable code ``booking.<what>`` and plain
words, so the API answers it as a problem body and the bot with the text
``booking.error.<what>`` (``core.kit.error_text``). Status changes
go through ``tenant.statuses["booking"].check`` only; a
:class:`core.TransitionError` passes through untouched.

No double booking: each booking writes one ``resource_holds`` row per resource
it occupies, spanning its time plus buffers, in the same transaction as the
booking. The table's exclusion constraint refuses overlapping active holds;
PostgreSQL checks it against every committed *and in-flight* row (an inserter
that meets an uncommitted overlapping row waits for that transaction to end),
so at READ COMMITTED exactly one of any number of concurrent requests for the
same resource and time commits, and the others get ``ExclusionViolationError``.

The package keeps one module per concern: :mod:`.availability` (slot planning
and free times), :mod:`.bookings` (create and status changes), :mod:`.reads`,
:mod:`.reminders` and :mod:`.blocks`; the Structs and ``settings_of`` live in
:mod:`plugins.booking.views`. Import the names from here.
"""

from __future__ import annotations

from plugins.booking.service.availability import (
    availability,
    next_free_times,
    party_sizes_at,
    services_at,
)
from plugins.booking.service.blocks import create_block, delete_block, list_blocks
from plugins.booking.service.bookings import change_status, create_booking, normalize_customer_phone
from plugins.booking.service.reads import bookings_on, daily_stats, get_booking, upcoming_for
from plugins.booking.service.reminders import remindable_statuses, schedule_reminder, send_reminder
from plugins.booking.views import (
    PLUGIN,
    AvailabilityResult,
    BlockView,
    BookingView,
    DailyStats,
    FreeSlot,
    NewBooking,
    SlotTaken,
    settings_of,
)

__all__ = [
    "PLUGIN",
    "AvailabilityResult",
    "BlockView",
    "BookingView",
    "DailyStats",
    "FreeSlot",
    "NewBooking",
    "SlotTaken",
    "availability",
    "bookings_on",
    "change_status",
    "create_block",
    "create_booking",
    "daily_stats",
    "delete_block",
    "get_booking",
    "list_blocks",
    "next_free_times",
    "normalize_customer_phone",
    "party_sizes_at",
    "remindable_statuses",
    "schedule_reminder",
    "send_reminder",
    "services_at",
    "settings_of",
    "upcoming_for",
]
