"""The relay: committed outbox rows of every tenant to the Redis shard streams.

One per runtime. It LISTENs on :data:`core.events.outbox.OUTBOX_CHANNEL` on
a connection of its own to each PostgreSQL server tenants are placed on
(``storage.database``: NOTIFY reaches only the listeners of its own server), so
a commit that published wakes it within milliseconds, and it never polls
every schema on a timer: a sweep over the tenants of this runtime (one query
per 200 schemas of one server, on that server's pool) runs at start, after a
listening connection was lost, and every ``sweep_seconds`` to heal a missed
notification (a crash between a commit and the relay's move is healed by
the sweep at the next start).

Moving one tenant's rows happens in one transaction of that tenant's schema,
three round trips to PostgreSQL: ``BEGIN`` with ``pg_advisory_xact_lock`` on
the schema (so two runtimes never move one tenant's rows at once, and the
order stays); ``DELETE ... RETURNING`` of the ``batch`` lowest ids; ``XADD``
of those rows, in id order, to the tenant's shard stream; ``COMMIT``. An
``XADD`` that fails rolls the delete back, and a crash after ``XADD`` and
before the commit re-sends those rows once more: delivery is at least once,
and consumers skip an event id they already handled
(:mod:`core.events.consumers`). A tenant is moved by one worker of a runtime
at a time; a notification that comes while it is being moved makes that
worker move it once more, instead of a second worker waiting on the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import asyncpg
import structlog

from core.config.model import DEFAULT_DATABASE
from core.errors import STORAGE_UNAVAILABLE
from core.events.consumers import stop_tasks
from core.events.metrics import EVENTS_MOVED
from core.events.outbox import OUTBOX_CHANNEL
from core.events.streams import StreamLayout

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.runtime.tenant import Tenant

__all__ = ["OutboxRelay"]

log = structlog.get_logger("tenantry.events")

_LOCK_PREFIX = "tenantry.outbox_relay:"
"""The relay's advisory lock key is this plus the tenant's schema (see ``TenantDB.transaction``)."""
_SWEEP_CHUNK = 200
_RETRY_SECONDS = 2.0
"""Longest wait between attempts while PostgreSQL or Redis is unavailable (listen, move)."""


class OutboxRelay:
    """Moves committed events from the tenants' outboxes to the shard streams.

    Args:
        dsn: PostgreSQL DSN for the listening connection (the pool's server).
        pool: the shared pool (kept for callers; sweeps use each tenant's own
            pool, ``tenant.db.pool``).
        redis: the shared Redis client.
        layout: the shard streams.
        tenants: returns the running tenants of this runtime by id.
        maxlen: approximate number of entries each shard stream keeps
            (``XADD MAXLEN ~``); older entries are trimmed.
        sweep_seconds: seconds between sweeps for rows a notification missed.
        batch: rows moved per transaction.
        workers: tenants moved at once.
        other_dsns: DSNs of the other PostgreSQL servers tenants are placed on,
            by name (:attr:`core.runtime.settings.RuntimeSettings.databases`):
            one more listening connection each.
    """

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        redis: Redis,
        layout: StreamLayout,
        tenants: Callable[[], dict[str, Tenant]],
        *,
        maxlen: int = 100_000,
        sweep_seconds: float = 30.0,
        batch: int = 500,
        workers: int = 4,
        other_dsns: Mapping[str, str] | None = None,
    ):
        self._dsns: dict[str, str] = {DEFAULT_DATABASE: dsn, **(other_dsns or {})}
        self._pool = pool
        self._redis = redis
        self._layout = layout
        self._tenants = tenants
        self._maxlen = maxlen
        self._sweep_seconds = sweep_seconds
        self._batch = batch
        self._workers = workers
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._moving: set[str] = set()
        self._again: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: dict[str, asyncpg.Connection] = {}
        self._lost = asyncio.Event()
        self.moved = 0
        """Events moved by this relay since start (a counter for /metrics and tests)."""

    async def start(self) -> None:
        """Listen for commits on every server, then sweep every tenant once; returns when listening.

        Raises:
            OSError, asyncpg.PostgresError: a listening connection cannot be opened.
        """
        for database in self._dsns:
            await self._listen(database)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"outbox-relay-{n}")
            for n in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._supervise(), name="outbox-relay-sweep"))

    async def stop(self) -> None:
        """Move what is queued, then stop the workers and close the listening connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 10)
        await stop_tasks(self._tasks)
        self._tasks = []
        for listener in self._listeners.values():
            with contextlib.suppress(Exception):
                await listener.close()
        self._listeners = {}

    def wake(self, tenant_id: str) -> None:
        """Queue ``tenant_id`` for a move (a notification, a tenant just started, a sweep hit)."""
        if tenant_id not in self._queued:
            self._queued.add(tenant_id)
            self._queue.put_nowait(tenant_id)

    async def idle(self) -> None:
        """Wait until nothing is queued or being moved (tests, drains)."""
        await self._queue.join()

    async def sweep(self) -> int:
        """Queue every running tenant whose outbox holds rows; return how many were queued."""
        found = 0
        for database in self._dsns:
            found += await self._sweep(database)
        return found

    async def _sweep(self, database: str) -> int:
        """:meth:`sweep` of the tenants placed on ``database``, on that server's pool."""
        tenants = [
            t
            for t in self._tenants().values()
            if t.serving and t.config.storage.database == database
        ]
        found = 0
        for start in range(0, len(tenants), _SWEEP_CHUNK):
            chunk = tenants[start : start + _SWEEP_CHUNK]
            for tenant_id in await self._nonempty(chunk):
                self.wake(tenant_id)
                found += 1
        return found

    # ------------------------------------------------------------ internals

    async def _listen(self, database: str) -> None:
        conn = await asyncpg.connect(
            self._dsns[database], server_settings={"application_name": "tenantry-outbox-relay"}
        )
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(OUTBOX_CHANNEL, self._notified)
        self._listeners[database] = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, tenant_id: str) -> None:
        if tenant_id in self._tenants():
            self.wake(tenant_id)

    async def _supervise(self) -> None:
        """Sweep at start, every ``sweep_seconds``, and after re-listening on a lost connection.

        Each server is healed on its own: one that is down does not hold up
        the listening and sweeps of the others.
        """
        backoff = 1.0
        while True:
            self._lost.clear()
            healthy = [await self._heal(database) for database in self._dsns]
            if all(healthy):
                backoff = 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), self._sweep_seconds)
                continue
            await asyncio.sleep(backoff)
            # At most _RETRY_SECONDS between attempts: events move again within
            # that long of PostgreSQL being back (one connection attempt per
            # runtime per interval costs a down server nothing).
            backoff = min(backoff * 2, _RETRY_SECONDS)

    async def _heal(self, database: str) -> bool:
        """Listen on ``database`` again if its connection was lost, then sweep its tenants.

        Returns:
            False when the server is unavailable (logged).
        """
        try:
            listener = self._listeners.get(database)
            if listener is None or listener.is_closed():
                await self._listen(database)
                log.info("outbox_relay_listening_again", database=database)
            await self._sweep(database)
        except asyncio.CancelledError:
            raise
        except (*STORAGE_UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning(
                "outbox_relay_unavailable",
                database=database,
                error=f"{type(exc).__name__}: {exc}",
            )
            self._listeners.pop(database, None)
            return False
        return True

    async def _nonempty(self, tenants: list[Tenant]) -> list[str]:
        """Ids of ``tenants`` whose outbox has a row: one query for the whole chunk."""
        parts = [
            f'SELECT ${n}::text WHERE EXISTS (SELECT 1 FROM "{t.config.schema}".tenantry_outbox)'
            for n, t in enumerate(tenants, start=1)
        ]
        try:
            # Every tenant of the chunk is on one server (see _sweep).
            async with tenants[0].db.pool.acquire() as conn:
                rows = await conn.fetch(" UNION ALL ".join(parts), *(t.id for t in tenants))
        except asyncpg.UndefinedTableError:
            # A tenant was dropped or is migrating since we listed it: ask one by one.
            if len(tenants) == 1:
                return []
            found: list[str] = []
            for tenant in tenants:
                found += await self._nonempty([tenant])
            return found
        return [row[0] for row in rows]

    async def _work(self) -> None:
        while True:
            tenant_id = await self._queue.get()
            self._queued.discard(tenant_id)
            if tenant_id in self._moving:
                # Another worker is moving it: it moves once more when done,
                # rather than this worker holding a connection on the lock.
                self._again.add(tenant_id)
                self._queue.task_done()
                continue
            self._moving.add(tenant_id)
            try:
                # In a method of its own, so this long-lived frame keeps no
                # reference to a Tenant that is later retired (it must be freed).
                await self._move_all(tenant_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Rows stay in the outbox; the next notification or sweep retries.
                log.warning(
                    "outbox_relay_failed", tenant=tenant_id, error=f"{type(exc).__name__}: {exc}"
                )
                if isinstance(exc, STORAGE_UNAVAILABLE):
                    # Redis or PostgreSQL is away: try this tenant again shortly. The
                    # next notification comes only with its next event and the sweep
                    # every sweep_seconds (30 s), so events committed during a Redis
                    # outage would otherwise wait that long after Redis is back.
                    asyncio.get_running_loop().call_later(_RETRY_SECONDS, self.wake, tenant_id)
            finally:
                self._moving.discard(tenant_id)
                if tenant_id in self._again:
                    self._again.discard(tenant_id)
                    self.wake(tenant_id)
                self._queue.task_done()

    async def _move_all(self, tenant_id: str) -> None:
        tenant = self._tenants().get(tenant_id)
        if tenant is not None and tenant.serving:
            while await self._move(tenant) == self._batch:
                pass

    async def _move(self, tenant: Tenant) -> int:
        """Move up to ``batch`` rows of ``tenant``; return how many moved."""
        stream = self._layout.key_for(tenant.id)
        async with tenant.db.transaction(lock=_LOCK_PREFIX + tenant.config.schema) as conn:
            # Deleted first and sent before the commit: a failed XADD rolls the
            # delete back. Only rows committed before this statement's snapshot
            # are taken; a lower id committing later waits for the next move.
            rows = await conn.fetch(
                "DELETE FROM tenantry_outbox WHERE id IN"
                " (SELECT id FROM tenantry_outbox ORDER BY id LIMIT $1)"
                " RETURNING id, event_id, name, payload::text AS payload, occurred_at",
                self._batch,
            )
            if not rows:
                return 0
            pipe = self._redis.pipeline(transaction=False)
            for row in sorted(rows, key=lambda r: r["id"]):
                pipe.xadd(
                    stream,
                    {
                        "id": row["event_id"],
                        "tenant": tenant.id,
                        "name": row["name"],
                        "payload": row["payload"],
                        "at": row["occurred_at"].isoformat(),
                    },
                    maxlen=self._maxlen,
                    approximate=True,
                )
            await pipe.execute()
        self.moved += len(rows)
        EVENTS_MOVED.inc(len(rows))
        return len(rows)
