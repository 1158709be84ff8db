"""Writing a domain event into the tenant's outbox, inside the caller's transaction.

The row and the change it describes commit or roll back together. The
``pg_notify`` in the same transaction is delivered only on commit (PostgreSQL:
"NOTIFY ... if executed within a transaction, the notification is delivered
when the transaction commits"), which wakes the relay of every runtime
listening on :data:`OUTBOX_CHANNEL`.

In a ``tenant.db.transaction()`` block the row is not sent at once: it goes
in the same simple query as the block's ``COMMIT``
(:meth:`core.storage.db.TenantConnection.defer_to_commit`), with its values
as dollar-quoted literals, which PostgreSQL never unescapes. Anything the
transaction sends in between sends it first, and a rollback drops it, so the
row is where it would be had it been sent at once, one round trip cheaper. A
failure to insert it (a payload the ``jsonb`` type refuses) then fails the
``COMMIT`` instead of :func:`write_event`: the transaction rolls back either way.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from core.events.model import DomainEvent
from core.storage.db import as_tenant_connection

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
    text = msgspec.json.encode(payload).decode()
    carrier = as_tenant_connection(conn)
    if carrier is not None and "\x00" not in name + tenant_id:
        # A NUL would end the query string early: such a row goes the usual way
        # (and is refused there). msgspec writes a NUL in the payload as \u0000.
        literal = (
            "INSERT INTO tenantry_outbox (event_id, name, payload, occurred_at) SELECT "
            f"{_quoted(event.id)}, {_quoted(name)}, {_quoted(text)}::jsonb, "
            f"{_quoted(event.occurred_at.isoformat())}::timestamptz "
            f"FROM pg_notify({_quoted(OUTBOX_CHANNEL)}, {_quoted(tenant_id)})"
        )
        if carrier.defer_to_commit(literal):
            return event
    await conn.execute(_INSERT, event.id, name, text, event.occurred_at, OUTBOX_CHANNEL, tenant_id)
    return event


def _quoted(value: str) -> str:
    """``value`` as a dollar-quoted SQL literal (PostgreSQL: "Dollar-Quoted String Constants").

    Nothing inside is unescaped, whatever ``standard_conforming_strings`` says;
    the tag is one whose first occurrence in ``value + tag`` is at its end, so
    ``value`` cannot close the literal early.
    """
    tag = "$o$"
    while (value + tag).find(tag) != len(value):
        tag = f"$o{secrets.token_hex(4)}$"
    return f"{tag}{value}{tag}"
