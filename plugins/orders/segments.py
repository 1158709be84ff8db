"""Audience segments the orders plugin offers (``register_segments``): customers by store and recency."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.segments import Segment, SegmentPreset

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["TEXTS", "segments"]

TEXTS = {
    "en": {
        "orders.segment.store": "Customers of {store}",
        "orders.segment.recent": "Ordered in the last {days} days",
    },
    "ru": {
        "orders.segment.store": "Покупатели: {store}",
        "orders.segment.recent": "Заказывали за последние {days} дн.",
    },
}
"""Titles of the segments, merged into the plugin's texts.

The repository (asyncpg) is imported when a segment is computed, so the
config phase (``register_texts``) loads only this module.
"""

RECENT_PRESETS = (30,)
"""Days offered as ready-made choices of ``orders.recent``."""


def segments(tenant: Tenant) -> list[Segment]:
    """``orders.store_customers`` (``store``; one preset per store) and ``orders.recent`` (``days``)."""
    stores = tenant.settings_for("orders").stores

    async def store_customers(conn: Any, store: str) -> list[int]:
        from plugins.orders import repository as repo

        return await repo.customers_of_store(conn, store)

    async def recent(conn: Any, days: int) -> list[int]:
        from plugins.orders import repository as repo

        return await repo.recent_customers(conn, max(1, min(days, 3660)))

    return [
        Segment(
            name="orders.store_customers",
            title=tenant.text("orders.segment.store", store="…"),
            members=store_customers,
            params={"store": str},
            presets=tuple(
                SegmentPreset(tenant.text("orders.segment.store", store=s.name), {"store": s.id})
                for s in stores
            ),
        ),
        Segment(
            name="orders.recent",
            title=tenant.text("orders.segment.recent", days=30),
            members=recent,
            params={"days": int},
            defaults={"days": 30},
            presets=tuple(
                SegmentPreset(tenant.text("orders.segment.recent", days=d), {"days": d})
                for d in RECENT_PRESETS
            ),
        ),
    ]
