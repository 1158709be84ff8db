"""One change: a transaction and the domain events it publishes, in one place.

``shifts.*`` events are written to the tenant's outbox in the transaction
that makes the change (``tenant.publish(name, payload, conn=conn)``), so a
rolled-back change publishes nothing. A ``tenant.publish`` without ``conn``
(a stand-in in a unit test) gets them right after the commit instead.
Services never call ``tenant.publish`` themselves.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core import Tenant
    from plugins.shifts.repository import Conn

__all__ = ["Change", "change"]


def _takes_connection(tenant: Tenant) -> bool:
    return "conn" in inspect.signature(tenant.publish).parameters


class Change:
    """The connection of a change in progress, and its events.

    Attributes:
        conn: the transaction's connection (search_path is the tenant's).
    """

    def __init__(self, tenant: Tenant, conn: Conn):
        self.conn = conn
        self._tenant = tenant
        self._in_transaction = _takes_connection(tenant)
        self.after_commit: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, name: str, payload: dict[str, Any]) -> None:
        """Publish ``name`` (``shifts.<what>``) with a small JSON-ready ``payload`` for this change."""
        if self._in_transaction:
            await self._tenant.publish(name, payload, conn=self.conn)  # type: ignore[call-arg]
        else:
            self.after_commit.append((name, payload))


@asynccontextmanager
async def change(tenant: Tenant, within: Change | None = None) -> AsyncIterator[Change]:
    """``async with change(tenant) as unit:`` a transaction whose events go out with its commit.

    Args:
        tenant: the tenant.
        within: a change already in progress: its transaction is used, so
            several service calls make one change (commit or roll back together).
    """
    if within is not None:
        yield within
        return
    async with tenant.db.transaction() as conn:
        unit = Change(tenant, conn)
        yield unit
    for name, payload in unit.after_commit:
        await tenant.publish(name, payload)
