"""Assembling a tenant: the one place that builds a :class:`Tenant` from a spec, and its bot on demand.

:func:`assemble_tenant` takes a validated spec, the contributions table and the
runtime's shared services and returns the tenant (storage, hook callers,
texts, its lifecycle). :class:`BotLoader` builds a tenant's routers, commands
and Dispatcher (at start for polling tenants, at the first update for
webhook tenants) and drops idle ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from core.runtime.plugins import resolve
from core.runtime.redaction import register_secrets
from core.runtime.tenant import CommandSpec, Tenant
from core.storage.db import TenantDB

if TYPE_CHECKING:
    import asyncpg
    from redis.asyncio import Redis

    from core.config.loader import TenantSpec
    from core.events.bus import EventBus
    from core.runtime.contributions import Contributions
    from core.runtime.lifecycle import Lifecycle
    from core.storage.jobs import JobRunner
    from core.updates.bots import BotHub

__all__ = ["BotLoader", "TenantServices", "assemble_tenant"]

log = structlog.get_logger("tenantry.registry")


@dataclass(frozen=True)
class TenantServices:
    """What the runtime shares with every tenant it assembles.

    Attributes:
        pools: each PostgreSQL server's pool by name (``default`` included).
        redis: the shared Redis client.
        bots: the :class:`~core.updates.bots.BotHub` (Bot, Dispatcher, webhook secret).
        jobs: the job runner, or None.
        events: the event bus, or None.
        transaction_pooling: the pools are a pooler in transaction mode
            (:class:`~core.storage.db.TenantDB`).
    """

    pools: Mapping[str, asyncpg.Pool]
    redis: Redis
    bots: BotHub
    jobs: JobRunner | None = None
    events: EventBus | None = None
    transaction_pooling: bool = False


def assemble_tenant(
    spec: TenantSpec,
    contributions: Contributions,
    services: TenantServices,
    lifecycle: Lifecycle,
) -> Tenant:
    """Build the tenant of ``spec``: its schema-confined db, hook callers, texts and Bot.

    The bot's routers and Dispatcher are built later (:class:`BotLoader`).
    From here on the tenant's secrets (its file's ``${...}`` values, bot
    token, webhook secret) never reach a log line or a shown text.

    Args:
        spec: a validated tenant file (:class:`core.config.loader.TenantSpec`).
        contributions: the runtime's contributions table.
        services: the runtime's shared services.
        lifecycle: the registry's lifecycle for this tenant object.

    Raises:
        KeyError: ``storage.database`` names a server with no pool (validation
            refuses such a file first).
    """
    config = spec.config
    pool = services.pools[config.storage.database]
    tenant = Tenant(
        config=config,
        features=spec.features,
        settings=spec.settings,
        statuses=spec.machines,
        texts=spec.texts,
        hook=contributions.hooks_for(spec.features),
        contributions=contributions,
        lifecycle=lifecycle,
        db=TenantDB(
            pool,
            config.schema,
            max_connections=config.storage.max_connections,
            transaction_pooling=services.transaction_pooling,
        ),
        redis=services.redis,
        jobs=services.jobs,
        source_hash=spec.source_hash,
        events=services.events,
    )
    tenant.spec = spec
    register_secrets(tenant, [*spec.secrets, services.bots.secret_for(tenant)])
    services.bots.prepare(tenant)
    return tenant


class BotLoader:
    """Builds tenants' bots (routers, commands, Dispatcher) on demand and drops idle ones.

    Args:
        bots: the :class:`~core.updates.bots.BotHub`.
    """

    def __init__(self, bots: BotHub):
        self.bots = bots
        # Tenants whose bot is being built (id(tenant) -> the task).
        self._building: dict[int, asyncio.Future[None]] = {}

    async def assemble(self, tenant: Tenant) -> None:
        """Build ``tenant``'s routers, commands and Dispatcher if it has none.

        Called for the first update after a lazy start or an idle drop
        (:meth:`unload_idle`); concurrent callers wait for one build.

        Raises:
            Exception: what a plugin's ``register_routers`` or
                ``register_commands`` raised (the caller answers 503).
        """
        if tenant.dispatcher is not None:
            return
        key = id(tenant)
        task = self._building.get(key)
        if task is None:
            task = asyncio.ensure_future(self.build(tenant))
            self._building[key] = task
            task.add_done_callback(lambda _done: self._building.pop(key, None))
        await asyncio.shield(task)

    async def build(self, tenant: Tenant) -> None:
        """Build ``tenant``'s bot now (its plugins' ``register_routers`` and ``register_commands``)."""
        routers = [
            r for r in await _collect(tenant.hook.register_routers(tenant=tenant)) if r is not None
        ]
        tenant.commands = [
            CommandSpec.of(entry)
            for group in tenant.hook.register_commands(tenant=tenant)
            for entry in (await resolve(group)) or ()
        ]
        self.bots.build(tenant, routers)
        tenant.last_used = time.monotonic()

    def unload_idle(self, tenants: Iterable[Tenant], idle_seconds: float, loaded_max: int) -> int:
        """Drop the Dispatcher and routers of idle webhook tenants; return how many.

        A webhook tenant with nothing in flight is dropped when its last
        update is more than ``idle_seconds`` ago, and beyond ``loaded_max``
        loaded tenants the least recently used go first. Polling tenants
        keep theirs (they poll). The next update builds it again
        (:meth:`assemble`), so routers must keep no state in memory.
        """
        now = time.monotonic()
        every = list(tenants)
        loaded = [
            t
            for t in every
            if t.dispatcher is not None and t.config.bot.mode == "webhook" and not t.busy
        ]
        loaded.sort(key=lambda t: t.last_used)
        total = sum(1 for t in every if t.dispatcher is not None)
        dropped = 0
        for tenant in loaded:
            if now - tenant.last_used <= idle_seconds and total - dropped <= loaded_max:
                break
            self.bots.unload(tenant)
            dropped += 1
        if dropped:
            log.info("tenants_unloaded", count=dropped, loaded=total - dropped)
        return dropped


async def _collect(results: Iterable[Any]) -> list[Any]:
    flat: list[Any] = []
    for result in results:
        value = await resolve(result)
        if isinstance(value, list | tuple):
            flat.extend(value)
        else:
            flat.append(value)
    return flat
