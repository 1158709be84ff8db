"""Booking plugin: restaurant tables or salon services, bot flow, WebApp/admin API, no double booking.

The tenant chooses the kind under ``features.booking``; see ``docs/plugins/booking.md``.
"""

from plugins.booking.config import BookingSettings
from plugins.booking.service import BookingProblem, BookingView, NewBooking, SlotTaken

__all__ = ["BookingProblem", "BookingSettings", "BookingView", "NewBooking", "SlotTaken"]
