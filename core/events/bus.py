"""The runtime's event machinery in one object: publish, relay, consume, wait for delivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
import pluggy

from core.events.consumers import EventConsumers
from core.events.model import DomainEvent
from core.events.outbox import write_event
from core.events.relay import OutboxRelay
from core.events.streams import StreamLayout
from core.runtime.rediscluster import is_cluster

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.runtime.settings import RuntimeSettings
    from core.runtime.tenant import Tenant

__all__ = ["EventBus"]


class EventBus:
    """Durable domain events of every tenant of this runtime (see docs/hooks.md, "Events").

    Start the consumers before the relay (:meth:`start` does), so a group that
    is created for the first time exists before the first event is moved.

    Args:
        settings: the runtime settings (``events_*`` fields, ``queue_name``).
        dsn: the PostgreSQL DSN (the relay's listening connection).
        pool: the shared pool.
        other_dsns: the other PostgreSQL servers tenants are placed on, name ->
            DSN (the relay listens on each).
        redis: the shared Redis client.
        pm: the plugin manager.
        tenants: returns the tenants of this runtime by id.

    Attributes:
        layout: the shard streams.
        relay: the outbox relay.
        consumers: this runtime's consumer of each plugin's group.
    """

    def __init__(
        self,
        settings: RuntimeSettings,
        dsn: str,
        pool: asyncpg.Pool,
        redis: Redis,
        pm: pluggy.PluginManager,
        tenants: Callable[[], dict[str, Tenant]],
        other_dsns: Mapping[str, str] | None = None,
    ):
        self._redis = redis
        self._pool = pool
        self.layout = StreamLayout(
            settings.queue_name, settings.events_shards, cluster=is_cluster(redis)
        )
        self.relay = OutboxRelay(
            dsn,
            pool,
            redis,
            self.layout,
            tenants,
            maxlen=settings.events_maxlen,
            sweep_seconds=settings.events_sweep_seconds,
            other_dsns=other_dsns,
        )
        self.consumers = EventConsumers(
            pm,
            redis,
            self.layout,
            tenants,
            consumer=settings.runtime_name,
            claim_idle_seconds=settings.events_claim_idle_seconds,
            max_attempts=settings.events_max_attempts,
            done_ttl_seconds=settings.events_done_ttl_seconds,
        )

    async def start(self, *, consume: bool = True) -> None:
        """Create the groups and start consuming (unless ``consume`` is False), then the relay.

        Raises:
            redis.RedisError, OSError, asyncpg.PostgresError: a server cannot be reached.
        """
        await self.consumers.ensure_groups()
        if consume:
            await self.consumers.start()
        await self.relay.start()

    async def stop(self) -> None:
        """Move what was committed and queued, then stop the relay and the consumers."""
        await self.relay.stop()
        await self.consumers.stop()

    async def publish(
        self, tenant: Tenant, name: str, payload: dict[str, Any], conn: asyncpg.Connection
    ) -> DomainEvent:
        """Write ``name`` into ``tenant``'s outbox in ``conn``'s transaction (see :func:`write_event`)."""
        return await write_event(conn, tenant.id, name, payload)

    async def delivered(self, tenant: Tenant, timeout: float = 10.0) -> bool:
        """Wait until every event ``tenant`` committed so far was handled by every group.

        "Handled" means acknowledged by the group of each enabled plugin that
        implements ``on_event``, on whichever runtime consumed it. For tests
        and drains; polls every few milliseconds.

        Args:
            tenant: the tenant.
            timeout: seconds to wait at most.

        Returns:
            True when delivered, False on timeout (a handler keeps failing, or
            no runtime consumes the group).
        """
        deadline = time.monotonic() + timeout
        # The shared pool of the tenant's server, not the tenant's share of it:
        # waiting for delivery must not take a connection the tenant's own
        # requests are queueing for.
        outbox = f'SELECT EXISTS (SELECT 1 FROM "{tenant.config.schema}".tenantry_outbox)'
        while await tenant.db.pool.fetchval(outbox):
            self.relay.wake(tenant.id)
            await self.relay.idle()
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        stream = self.layout.key_for(tenant.id)
        newest = await self._redis.xrevrange(stream, count=1)
        if not newest:
            return True
        last_id = newest[0][0]
        groups = [g for g in self.consumers.groups if g in tenant.features]
        while True:
            if all([await self._caught_up(stream, group, last_id) for group in groups]):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)

    async def _caught_up(self, stream: str, group: str, last_id: str) -> bool:
        for info in await self._redis.xinfo_groups(stream):
            if info["name"] == group:
                if _stream_id(info["last-delivered-id"]) < _stream_id(last_id):
                    return False
                return await self.consumers.pending(group, stream, last_id) == 0
        return True  # no such group (yet): nothing of it to wait for


def _stream_id(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)
