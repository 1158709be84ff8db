"""The domain event: what one plugin of a tenant tells the others (and other runtimes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["DomainEvent"]


class DomainEvent(msgspec.Struct, frozen=True):
    """Something that happened in one tenant, as written to its outbox and read from the stream.

    Attributes:
        name: ``<plugin>.<what>``, e.g. ``booking.created``, ``orders.status_changed``.
        payload: JSON-ready data the subscribers need (ids, amounts in minor
            units, times as ISO 8601 UTC strings). Keep it small: it is
            stored in the outbox and in the stream.
        tenant_id: the tenant it happened in.
        id: stable event id (32 hex characters, a UUID4), the same on every
            delivery of this event to every consumer group: a consumer that
            must not act twice keys its idempotency on it.
        occurred_at: UTC time of publication (the publishing transaction's).
    """

    name: str
    payload: dict[str, Any]
    tenant_id: str
    id: str = ""
    occurred_at: datetime = msgspec.field(default_factory=lambda: datetime.now(UTC))
