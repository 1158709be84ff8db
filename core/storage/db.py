"""PostgreSQL access: one asyncpg pool for all tenants, a schema per tenant.

A :class:`TenantDB` hands out connections whose ``search_path`` is the tenant's
schema. ``acquire()`` sets it for the session (asyncpg's pool resets the
session, ``RESET ALL`` included, when the connection is released, so it never
leaks to the next user); ``transaction()`` uses ``SET LOCAL`` inside the
transaction.

The pool's connections are :class:`TenantConnection`, which lets
``transaction()`` send ``SET LOCAL search_path`` in the same round trip as
``BEGIN`` and, on a pool that resets sessions, asyncpg's reset query in the
same round trip as ``COMMIT``: a transaction costs two round trips of its own
instead of four (BEGIN, SET LOCAL, COMMIT, the reset on release).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "TENANT_WAIT_SECONDS",
    "TenantBusy",
    "TenantConnection",
    "TenantDB",
    "as_tenant_connection",
    "create_pool",
]

DEFAULT_MAX_CONNECTIONS = 5
"""Connections of the shared pool one tenant may hold at once (``storage.max_connections``)."""

TENANT_WAIT_SECONDS = 5.0
"""How long a request waits for one of its tenant's connections before it gets 503."""

LOCK_KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
"""What a ``transaction(lock=...)`` key may hold: it is sent as a literal, with ``BEGIN``."""

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


class TenantConnection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg's connection, able to send a statement with its transaction's ``BEGIN`` or ``COMMIT``.

    asyncpg's :class:`~asyncpg.transaction.Transaction` sends ``BEGIN ...;``
    and ``COMMIT;`` as simple queries through :meth:`execute`, and a simple
    query may hold several statements (PostgreSQL runs them in order and stops
    at the first error). :meth:`with_begin` makes the next ``BEGIN`` carry a
    statement; :meth:`reset_with_commit` makes the next ``COMMIT`` carry
    :meth:`asyncpg.Connection.get_reset_query` (advisory unlock, ``CLOSE
    ALL``, ``UNLISTEN *``, ``RESET ALL``), after which :meth:`get_reset_query`
    answers ``""`` once, so the pool's reset on release (asyncpg's documented
    override point) sends nothing. Savepoints of nested ``transaction()``
    blocks are untouched. Set as the pool's ``connection_class`` by
    :func:`create_pool`.

    Inside a :meth:`TenantDB.transaction` block, :meth:`defer_to_commit`
    keeps a statement (the outbox row of :func:`core.events.outbox.write_event`)
    to send in the same simple query as ``COMMIT``. Whatever the connection
    sends before that (a statement, a savepoint, its release or rollback)
    sends the kept statement first, or drops it on ``ROLLBACK``, so it runs
    where it would have run at once: only its round trip is saved. (Not
    covered: a ``PreparedStatement`` prepared before the kept statement and
    run after it, which asyncpg sends straight to its protocol; neither the
    core nor the built-in plugins use prepared statement objects.)
    """

    __slots__ = ("_begin_tail", "_commit_tail", "_deferrable", "_deferred", "_session_reset")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._begin_tail: str | None = None
        self._commit_tail: str | None = None
        self._deferred: str | None = None
        self._deferrable = False
        self._session_reset = False

    def allow_deferred(self, allowed: bool) -> None:
        """Let :meth:`defer_to_commit` keep statements (True, in a transaction block) or not.

        Called by :meth:`TenantDB.transaction` only: its block ends in asyncpg's
        ``COMMIT`` or ``ROLLBACK``, which sends or drops what was kept. False
        stops keeping more; what is kept stays for that ``COMMIT``.
        """
        self._deferrable = allowed

    def defer_to_commit(self, statement: str) -> bool:
        """Send ``statement`` (simple-query SQL, literals only) with this transaction's ``COMMIT``.

        Returns:
            True when it was kept; False outside a :meth:`TenantDB.transaction`
            block, where the caller sends it itself.
        """
        if not self._deferrable:
            return False
        self._deferred = statement if self._deferred is None else f"{self._deferred};{statement}"
        return True

    def discard_deferred(self) -> None:
        """Forget a kept statement (the transaction is over) and keep no more."""
        self._deferred = None
        self._deferrable = False

    async def _send_deferred(self) -> None:
        """Send the kept statements now, before anything else is sent."""
        statement, self._deferred = self._deferred, None
        if statement is not None:
            await super().execute(statement)

    async def _get_statement(self, *args: Any, **kwargs: Any) -> Any:
        # asyncpg prepares (or finds in its cache) every extended-protocol
        # statement here: fetch*, execute with arguments, executemany,
        # prepare, cursors (tests/test_core_events.py checks that a statement
        # after a publish sees its row).
        if self._deferred is not None:
            await self._send_deferred()
        return await super()._get_statement(*args, **kwargs)

    async def _copy_in(self, *args: Any, **kwargs: Any) -> Any:
        if self._deferred is not None:
            await self._send_deferred()
        return await super()._copy_in(*args, **kwargs)

    async def _copy_out(self, *args: Any, **kwargs: Any) -> Any:
        if self._deferred is not None:
            await self._send_deferred()
        return await super()._copy_out(*args, **kwargs)

    def with_begin(self, statement: str) -> None:
        """Send ``statement`` with the next transaction's ``BEGIN`` (see :meth:`began_with`)."""
        self._begin_tail = statement

    def began_with(self) -> bool:
        """True when the ``BEGIN`` just sent carried the :meth:`with_begin` statement.

        False when it did not (nothing was armed, or asyncpg began otherwise):
        the caller sends the statement itself. Disarms in both cases.
        """
        sent = self._begin_tail is None
        self._begin_tail = None
        return sent

    def reset_with_commit(self) -> None:
        """Send the session reset with the next ``COMMIT``; the release then sends none.

        Call it last in a transaction, right before its block commits. When
        the ``COMMIT`` fails, nothing is skipped: the release resets as usual.
        """
        self._commit_tail = super().get_reset_query()

    def get_reset_query(self) -> str:
        """asyncpg's reset query, or ``""`` once the last ``COMMIT`` has carried it."""
        if self._session_reset:
            self._session_reset = False
            return ""
        return super().get_reset_query()

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        """:meth:`asyncpg.Connection.execute`, adding the armed statements to ``BEGIN``/``COMMIT``.

        A statement kept by :meth:`defer_to_commit` goes first in the
        ``COMMIT``'s query, is dropped by a ``ROLLBACK`` (not ``ROLLBACK
        TO``), and is sent on its own before any other query.
        """
        if not args:
            if query.startswith("BEGIN"):
                self._deferred = None  # kept in no open transaction: never sent
                if self._begin_tail is not None:
                    query, self._begin_tail = query + self._begin_tail, None
            elif query == "COMMIT;":
                if self._deferred is not None:
                    query, self._deferred = f"{self._deferred};{query}", None
                if self._commit_tail is None:
                    return await super().execute(query, timeout=timeout)
                query, self._commit_tail = query + self._commit_tail, None
                status = await super().execute(query, timeout=timeout)
                self._session_reset = True
                return status
            elif query.startswith("ROLLBACK") and not query.startswith("ROLLBACK TO"):
                self._deferred = None
        if self._deferred is not None:
            await self._send_deferred()
        return await super().execute(query, *args, timeout=timeout)


def as_tenant_connection(conn: Any) -> TenantConnection | None:
    """The pooled connection as a :class:`TenantConnection`, or None for another connection class.

    By its methods: a pool's connection is a proxy, and asyncpg's
    ``isinstance`` answers True for any proxy whatever the class asked about.
    """
    return conn if callable(getattr(conn, "reset_with_commit", None)) else None


class TenantBusy(TimeoutError):
    """A tenant holds all the connections its cap allows and none came free in time.

    A ``TimeoutError``, so it is one of :data:`core.errors.STORAGE_UNAVAILABLE`:
    HTTP routes answer 503 with ``Retry-After`` and a webhook update is given
    back to Telegram to re-send.
    """


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    application_name: str = "tenantry",
    transaction_pooling: bool = False,
) -> asyncpg.Pool:
    """Open the shared pool.

    Args:
        dsn: PostgreSQL DSN (``postgresql://user@host:5432/db``).
        min_size: connections opened at start.
        max_size: upper bound for all tenants together.
        application_name: shown in ``pg_stat_activity`` for these connections.
        transaction_pooling: ``dsn`` is PgBouncer in transaction mode, whose
            server connections change between transactions: no named
            prepared statements (``statement_cache_size=0``) and no session
            reset on release (a pooler does its own).

    Returns:
        A pool of :class:`TenantConnection`.

    Raises:
        OSError, asyncpg.PostgresError: the server cannot be reached or refuses us.
    """
    if transaction_pooling:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=60,
            statement_cache_size=0,
            server_settings={"application_name": application_name},
            reset=_no_reset,
            connection_class=TenantConnection,
        )
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        server_settings={"application_name": application_name},
        connection_class=TenantConnection,
    )


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """A pooler in transaction mode resets server connections itself (``server_reset_query``)."""


class TenantDB:
    """Connections of one tenant, confined to its schema and to its share of the pool.

    A tenant holds at most ``max_connections`` connections of the shared pool
    at once (an asyncio semaphore per TenantDB), so one slow tenant (long
    queries, a flood of requests) waits for its own connections while the
    others keep theirs. Waiting longer than ``acquire_timeout`` raises
    :class:`TenantBusy` (503). Do not acquire a second connection while
    holding one: under the cap that waits for yourself.

    Args:
        pool: the shared pool.
        schema: the tenant's schema.
        max_connections: the tenant's cap (``storage.max_connections``); never
            more than the pool's size minus one, and at least 1.
        acquire_timeout: seconds to wait for a connection under the cap.
        transaction_pooling: the pool reaches PostgreSQL through a pooler in
            transaction mode: :meth:`acquire` then runs in a transaction too
            (``SET LOCAL search_path``), since a session ``SET`` would stay on
            a server connection that other clients get next. Statements in one
            ``acquire()`` block then commit together at its end.

    Attributes:
        pool: the shared pool.
        schema: the tenant's schema (a validated identifier, safe to quote).
        max_connections: the effective cap.
        acquire_timeout: seconds a caller waits under the cap before
            :class:`TenantBusy`.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        acquire_timeout: float = TENANT_WAIT_SECONDS,
        transaction_pooling: bool = False,
    ):
        self.pool = pool
        self.transaction_pooling = transaction_pooling
        self.schema = schema
        self.max_connections = max(1, min(max_connections, pool.get_max_size() - 1))
        self.acquire_timeout = acquire_timeout
        self._slots = asyncio.Semaphore(self.max_connections)
        # Only the tenant's schema: ``public`` is shared by every database user,
        # so a table or function placed there must not be found by a bare name.
        self._set_path = f'SET search_path TO "{schema}"'
        self._set_local_path = f'SET LOCAL search_path TO "{schema}"'

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """Yield a pooled connection with the tenant's search_path.

        Raises:
            TenantBusy: the tenant's cap stayed full for ``acquire_timeout`` seconds.
        """
        if self.transaction_pooling:
            async with self.transaction() as conn:
                yield conn
            return
        await self._take_slot()
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(self._set_path)
                yield conn
        finally:
            self._slots.release()

    @asynccontextmanager
    async def transaction(
        self, *, isolation: str = "read_committed", lock: str | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """Yield a connection inside a transaction whose search_path is the tenant's.

        On a pool of :class:`TenantConnection` (:func:`create_pool`), ``SET
        LOCAL search_path`` (and the ``lock``) goes with ``BEGIN`` and, unless
        the pool is a transaction pooler's, the session reset with ``COMMIT``
        (two round trips of its own); on any other pool, as separate
        statements (four, five with a lock). Nested ``conn.transaction()``
        blocks are savepoints, as asyncpg has them.

        Args:
            isolation: ``read_committed``, ``repeatable_read`` or ``serializable``.
            lock: first take the transaction-level advisory lock of this key
                (``pg_advisory_xact_lock(hashtextextended(lock, 0))``), held
                until the transaction ends: transactions naming the same key
                run one after another (one customer's creates under a cap;
                count what they hold in a later statement, whose snapshot shows
                what committed while this one waited). Advisory locks are
                database-wide, so name the schema in the key. Letters, digits
                and ``_.:-`` (:data:`LOCK_KEY_PATTERN`).

        Raises:
            TenantBusy: the tenant's cap stayed full for ``acquire_timeout`` seconds.
            ValueError: ``lock`` holds other characters, or more than 200.
        """
        first = self._set_local_path
        if lock is not None:
            if not LOCK_KEY_PATTERN.fullmatch(lock):
                raise ValueError(
                    f"advisory lock key {lock!r} does not match {LOCK_KEY_PATTERN.pattern}"
                )
            first += f";SELECT pg_advisory_xact_lock(hashtextextended('{lock}', 0))"
        await self._take_slot()
        try:
            async with self.pool.acquire() as conn:
                carrier = as_tenant_connection(conn)
                if carrier is not None:
                    carrier.with_begin(first)
                try:
                    async with conn.transaction(isolation=isolation):
                        if carrier is None or not carrier.began_with():
                            await conn.execute(self._set_local_path)
                            if lock is not None:
                                await conn.execute(_LOCK, lock)
                        if carrier is not None:
                            carrier.allow_deferred(True)
                        yield conn
                        if carrier is not None:
                            carrier.allow_deferred(False)
                            if not self.transaction_pooling:
                                carrier.reset_with_commit()
                finally:
                    if carrier is not None:
                        carrier.discard_deferred()
        finally:
            self._slots.release()

    async def _take_slot(self) -> None:
        """Take one of the tenant's connection slots, waiting at most ``acquire_timeout``."""
        if not self._slots.locked():
            # A free slot is taken without suspending: no timer on the hot path.
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(self.acquire_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise TenantBusy(
                f"schema {self.schema!r} holds all {self.max_connections} connections it may; "
                f"none came free within {self.acquire_timeout} s"
            ) from None

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
