"""Domain events: how plugins of one tenant tell each other what happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["DomainEvent"]


class DomainEvent(msgspec.Struct, frozen=True):
    """Something that happened in one tenant.

    Attributes:
        name: ``<plugin>.<what>``, e.g. ``booking.created``, ``orders.status_changed``.
        payload: JSON-ready data the subscribers need (ids, amounts in minor units,
            times as ISO 8601 UTC strings).
        tenant_id: the tenant it happened in.
        occurred_at: UTC time of publication.
    """

    name: str
    payload: dict[str, Any]
    tenant_id: str
    occurred_at: datetime = msgspec.field(default_factory=lambda: datetime.now(UTC))
