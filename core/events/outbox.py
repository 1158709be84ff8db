"""Writing a domain event into the tenant's outbox, inside the caller's transaction.

The row and the change it describes commit or roll back together. The
``pg_notify`` in the same transaction is delivered only on commit (PostgreSQL:
"NOTIFY ... if executed within a transaction, the notification is delivered
when the transaction commits"), which wakes the relay of every runtime
listening on :data:`OUTBOX_CHANNEL`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from core.events.model import DomainEvent

__all__ = ["OUTBOX_CHANNEL", "write_event"]

OUTBOX_CHANNEL = "tenantry_outbox"
"""The LISTEN/NOTIFY channel; the notification payload is the tenant id."""

# One round trip: the row and the notification (pg_notify in FROM yields one row).
_INSERT = (
    "INSERT INTO tenantry_outbox (event_id, name, payload, occurred_at) "
    "SELECT $1, $2, $3::jsonb, $4 FROM pg_notify($5, $6)"
)


async def write_event(
    conn: asyncpg.Connection, tenant_id: str, name: str, payload: dict[str, Any]
) -> DomainEvent:
    """Insert the event into the outbox of the schema on ``conn``'s search_path and notify.

    Args:
        conn: a connection inside a transaction of the tenant's schema
            (``tenant.db.transaction()``).
        tenant_id: the tenant (the notification payload).
        name: ``<plugin>.<what>``.
        payload: JSON-ready dict.

    Returns:
        The event as it will be delivered (its ``id`` and ``occurred_at`` set).

    Raises:
        RuntimeError: ``conn`` is not inside a transaction, so the event
            could not be tied to a change.
        TypeError: ``payload`` is not JSON-serialisable (msgspec's error).
    """
    if not conn.is_in_transaction():
        raise RuntimeError(
            "publish the event inside the transaction that makes the change "
            "(async with tenant.db.transaction() as conn: ... publish(..., conn=conn))"
        )
    event = DomainEvent(
        name=name,
        payload=payload,
        tenant_id=tenant_id,
        id=uuid.uuid4().hex,
        occurred_at=datetime.now(UTC),
    )
    await conn.execute(
        _INSERT,
        event.id,
        name,
        msgspec.json.encode(payload).decode(),
        event.occurred_at,
        OUTBOX_CHANNEL,
        tenant_id,
    )
    return event
