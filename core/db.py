"""PostgreSQL access: one asyncpg pool for all tenants, a schema per tenant.

A :class:`TenantDB` hands out connections whose ``search_path`` is the tenant's
schema. ``acquire()`` sets it for the session (asyncpg's pool runs ``RESET ALL``
when the connection is released, so it never leaks to the next user);
``transaction()`` uses ``SET LOCAL`` inside the transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

__all__ = ["TenantDB", "create_pool"]


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, application_name: str = "tenantry"
) -> asyncpg.Pool:
    """Open the shared pool.

    Args:
        dsn: PostgreSQL DSN (``postgresql://user@host:5432/db``).
        min_size: connections opened at start.
        max_size: upper bound for all tenants together.
        application_name: shown in ``pg_stat_activity`` for these connections.

    Raises:
        OSError, asyncpg.PostgresError: the server cannot be reached or refuses us.
    """
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        server_settings={"application_name": application_name},
    )


class TenantDB:
    """Connections of one tenant, confined to its schema.

    Attributes:
        pool: the shared pool.
        schema: the tenant's schema (a validated identifier, safe to quote).
    """

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.schema = schema
        self._set_path = f'SET search_path TO "{schema}", public'
        self._set_local_path = f'SET LOCAL search_path TO "{schema}", public'

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """Yield a pooled connection with the tenant's search_path."""
        async with self.pool.acquire() as conn:
            await conn.execute(self._set_path)
            yield conn

    @asynccontextmanager
    async def transaction(
        self, *, isolation: str = "read_committed"
    ) -> AsyncIterator[asyncpg.Connection]:
        """Yield a connection inside a transaction whose search_path is the tenant's.

        Args:
            isolation: ``read_committed``, ``repeatable_read`` or ``serializable``.
        """
        async with self.pool.acquire() as conn, conn.transaction(isolation=isolation):
            await conn.execute(self._set_local_path)
            yield conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run ``query`` in the tenant schema and return all rows."""
        async with self.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """Run ``query`` in the tenant schema and return the first row or None."""
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        """Run ``query`` in the tenant schema and return the first column of the first row."""
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        """Run ``query`` in the tenant schema; return the command status (``INSERT 0 1``)."""
        async with self.acquire() as conn:
            return await conn.execute(query, *args)
