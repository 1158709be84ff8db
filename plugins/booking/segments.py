"""Audience segments the booking plugin offers (``register_segments``): recent and upcoming guests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.segments import Segment, SegmentPreset

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["TEXTS", "segments"]

TEXTS = {
    "en": {
        "booking.segment.visited": "Guests of the last {days} days",
        "booking.segment.upcoming": "Guests with an upcoming booking",
    },
    "ru": {
        "booking.segment.visited": "Гости за последние {days} дн.",
        "booking.segment.upcoming": "Гости с предстоящей бронью",
    },
}
"""Titles of the segments, merged into the plugin's texts.

The repository (asyncpg) is imported when a segment is computed, so the
config phase (``register_texts``) loads only this module.
"""

VISITED_PRESETS = (30, 90)
"""Days offered as ready-made choices of ``booking.visited``."""


def segments(tenant: Tenant) -> list[Segment]:
    """``booking.visited`` (``days``, default 30) and ``booking.upcoming``."""
    settings = tenant.settings_for("booking")
    released = tuple(settings.released_statuses)

    async def visited(conn: Any, days: int) -> list[int]:
        from plugins.booking import repository as repo

        return await repo.guests_visited(conn, max(1, min(days, 3660)), released)

    async def upcoming(conn: Any) -> list[int]:
        from plugins.booking import repository as repo

        return await repo.guests_upcoming(conn, (*released, settings.completed_status))

    return [
        Segment(
            name="booking.visited",
            title=tenant.text("booking.segment.visited", days=30),
            members=visited,
            params={"days": int},
            defaults={"days": 30},
            presets=tuple(
                SegmentPreset(tenant.text("booking.segment.visited", days=d), {"days": d})
                for d in VISITED_PRESETS
            ),
        ),
        Segment(
            name="booking.upcoming",
            title=tenant.text("booking.segment.upcoming"),
            members=upcoming,
        ),
    ]
