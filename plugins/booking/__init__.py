"""Booking plugin: restaurant tables or salon services, bot flow, WebApp/admin API, no double booking.

The tenant chooses the kind under ``features.booking``; see ``docs/plugins/booking.md``.
The service names are imported on first use (PEP 562), so the config phase
(``hookimpls`` loading the settings) does not import the service, the kit,
aiogram or Litestar.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from plugins.booking.config import BookingSettings

if TYPE_CHECKING:
    from plugins.booking.service import BookingView, NewBooking, SlotTaken

__all__ = ["BookingSettings", "BookingView", "NewBooking", "SlotTaken"]

_LAZY_EXPORTS = dict.fromkeys(("BookingView", "NewBooking", "SlotTaken"), "plugins.booking.service")


def __getattr__(name: str) -> Any:
    """Import a service name of :data:`__all__` on first access.

    Raises:
        AttributeError: ``name`` is not a public name of the package.
    """
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugins.booking' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
