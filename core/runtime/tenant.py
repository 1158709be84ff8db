"""The :class:`Tenant` object: everything a plugin may touch for one tenant."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import msgspec
import structlog

from core.events.model import DomainEvent
from core.runtime.lifecycle import Lifecycle, TenantState
from core.runtime.plugins import CORE_PLUGIN
from core.runtime.redaction import redact
from core.runtime.rediscluster import is_cluster, tagged_prefix

if TYPE_CHECKING:
    import asyncpg
    import pluggy
    from aiogram import Bot, Dispatcher
    from redis.asyncio import Redis

    from core.actors import Actor
    from core.config.model import TenantConfig
    from core.events.bus import EventBus
    from core.runtime.contributions import Contributions
    from core.storage.db import TenantDB
    from core.storage.jobs import JobRunner
    from core.storage.statuses import StatusMachine

__all__ = ["CommandSpec", "SubsetHooks", "Tenant", "TenantState"]


class CommandSpec(msgspec.Struct, frozen=True):
    """A bot command of an enabled plugin.

    Attributes:
        command: without the slash (Bot API BotCommand.command: 1-32 chars ``a-z0-9_``).
        description: shown in the menu and ``/help`` (1-256 chars).
        roles: the roles the command is for; empty for everyone. Offered
            (``/help``, the command menu) only to actors holding one; others
            who send it get the core's refusal (``core.builtin``).
    """

    command: str
    description: str
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, entry: Sequence[Any]) -> CommandSpec:
        """A spec from a ``register_commands`` tuple: ``(command, description[, roles])``.

        The third element is a role name (``"admin"``) or a sequence of them.
        """
        roles: tuple[str, ...] = ()
        if len(entry) > 2 and entry[2]:
            third = entry[2]
            roles = (third,) if isinstance(third, str) else tuple(str(r) for r in third)
        return cls(str(entry[0]), str(entry[1]), roles)

    @property
    def admin_only(self) -> bool:
        """True for a command only ``admin`` may use (the roles are exactly ``admin``)."""
        return self.roles == ("admin",)

    def visible_to(self, roles: frozenset[str]) -> bool:
        """True when an actor holding ``roles`` should see this command."""
        return not self.roles or not roles.isdisjoint(self.roles)


class Tenant:
    """One running tenant, as handed to plugin hooks, handlers and jobs.

    Attributes:
        id: tenant id from the YAML.
        config: the validated TenantConfig.
        features: enabled plugin names (core first).
        settings: plugin name -> its validated settings Struct (None if it has none).
        statuses: entity name -> StatusMachine.
        db: schema-confined PostgreSQL access.
        redis: the shared Redis client; build keys with :meth:`key`.
        bot: the tenant's aiogram Bot (shared HTTP session).
        dispatcher: the tenant's aiogram Dispatcher, or None while the bot is
            not loaded (a webhook tenant's is built at its first update and
            dropped when idle: :meth:`core.runtime.registry.TenantRegistry.assemble`).
        last_used: ``time.monotonic()`` of its last update or build.
        state / detail / started_at: read from its :class:`~core.runtime.lifecycle.Lifecycle`,
            which the registry's entry for it owns and writes (``detail`` is
            read back redacted: :func:`core.runtime.redaction.redact`).
        hook: its enabled plugins' hook callers (``tenant.hook.on_tenant_started(...)``:
            pluggy's ``subset_hook_caller``), shared by tenants enabling the same plugins.
        contributions: the runtime's table of what every plugin contributed
            (:class:`core.runtime.contributions.Contributions`).
        log: structlog logger bound with ``tenant``.
    """

    def __init__(
        self,
        *,
        config: TenantConfig,
        features: tuple[str, ...],
        settings: Mapping[str, msgspec.Struct | None],
        statuses: Mapping[str, StatusMachine],
        texts: Mapping[str, Mapping[str, str]],
        hook: Any,
        contributions: Contributions,
        lifecycle: Lifecycle,
        db: TenantDB,
        redis: Redis,
        jobs: JobRunner | None,
        source_hash: str,
        events: EventBus | None = None,
    ):
        self.id = config.id
        self.config = config
        self.features = features
        self.settings = dict(settings)
        self.statuses = dict(statuses)
        self.db = db
        self.redis = redis
        # On a cluster the prefix is a hash tag: all the tenant's keys in one slot.
        self._redis_prefix = (
            tagged_prefix(config.redis_prefix) if is_cluster(redis) else config.redis_prefix
        )
        self.jobs = jobs
        self.source_hash = source_hash
        self.tz = ZoneInfo(config.timezone)
        self.bot: Bot = None  # type: ignore[assignment]  # set by core.updates.bots before start
        self.dispatcher: Dispatcher = None  # type: ignore[assignment]
        self.spec: Any = None  # the TenantSpec it was built from (core.config.loader)
        self.commands: list[CommandSpec] = []  # commands of the enabled plugins, core's last
        self.webhook_secret: str | None = None  # filled in by core.updates.bots.BotHub.secret_for
        self._lifecycle = lifecycle
        self.last_used = 0.0
        self.log = structlog.get_logger("tenantry").bind(tenant=config.id)
        self._texts = texts
        self.hook = hook
        self.contributions = contributions
        self.events = events
        self._inflight = 0
        # Made by the first drain that has to wait (an Event costs about 0.7 KB,
        # times every tenant of a runtime); set when nothing is in flight.
        self._idle: asyncio.Event | None = None

    # ------------------------------------------------------------ identity

    @property
    def locale(self) -> str:
        """The tenant's bot language (``ru``, ``en``...)."""
        return self.config.locale

    @property
    def redis_prefix(self) -> str:
        """Prefix of every Redis key of this tenant.

        ``storage.redis_prefix`` on a plain Redis; on a Redis Cluster the same
        as a hash tag (``filin:`` -> ``{filin}:``), so that every key of the
        tenant is in one slot and its multi-key scripts run there
        (:func:`core.runtime.rediscluster.tagged_prefix`).
        """
        return self._redis_prefix

    @property
    def plain_redis(self) -> Redis:
        """A plain (non-cluster) Redis client, for pub/sub and libraries without hash tags.

        The shared client on a plain Redis; on a Redis Cluster the queue
        Redis' client (``TENANTRY_QUEUE_REDIS_URL``, saq's, ``decode_responses``
        off). Realtime Channels use it.

        Raises:
            RuntimeError: on a cluster, when the tenant has no job runner.
        """
        if not is_cluster(self.redis):
            return self.redis
        if self.jobs is None:
            raise RuntimeError("a Redis Cluster runtime without a job runner has no plain Redis")
        return self.jobs.queue.redis  # type: ignore[attr-defined, no-any-return]

    def key(self, *parts: object) -> str:
        """Build a Redis key of this tenant: ``key("cart", 42)`` -> ``"filin:cart:42"``.

        On a Redis Cluster the prefix is a hash tag: ``"{filin}:cart:42"``.
        """
        return self._redis_prefix + ":".join(str(p) for p in parts)

    def commands_for(self, who: Actor | int | None) -> list[CommandSpec]:
        """The commands ``who`` may see: everyone's, plus those of the roles it holds.

        Args:
            who: the resolved actor (handlers get it as ``actor``), or a
                Telegram user id, taken as ``admin`` when in ``bot.admins``
                and ``customer`` otherwise (no plugin's grants).
        """
        if who is None or isinstance(who, int):
            roles = frozenset({"admin", "customer"} if self.is_admin(who) else {"customer"})
        else:
            roles = who.roles
        return [c for c in self.commands if c.visible_to(roles)]

    def is_admin(self, user_id: int | None) -> bool:
        """True when ``user_id`` is listed in ``bot.admins`` (the core's ``admin`` grant)."""
        return user_id is not None and user_id in self.config.bot.admins

    def enabled(self, feature: str) -> bool:
        """True when the tenant enables the plugin ``feature``."""
        return feature in self.features

    def settings_for(self, feature: str) -> Any:
        """The settings Struct of ``feature``.

        Raises:
            KeyError: the feature is not enabled for this tenant.
        """
        return self.settings[feature]

    # ------------------------------------------------------------ texts and time

    def text(self, key: str, /, **fields: object) -> str:
        """The bot text ``key`` in the tenant's locale, formatted with ``fields``.

        Looks in the tenant's ``texts:`` block, then the plugins' texts for the
        locale, then English; an unknown key is returned as is so a missing
        translation shows up instead of crashing a handler.
        """
        template = self.config.texts.get(key)
        if template is None:
            template = self._texts.get(self.locale, {}).get(key) or self._texts.get("en", {}).get(
                key, key
            )
        if not fields:
            return template
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):
            self.log.warning("text_format_failed", key=key)
            return template

    def local_time(self, moment: datetime) -> datetime:
        """Convert an aware UTC datetime to the tenant's time zone."""
        return moment.astimezone(self.tz)

    # ------------------------------------------------------------ events and jobs

    async def publish(
        self, name: str, payload: dict[str, Any], *, conn: asyncpg.Connection | None = None
    ) -> DomainEvent:
        """Publish a domain event through this tenant's outbox (durable, at least once).

        Call it inside the transaction that makes the change, with that
        transaction's connection: the event is written to the tenant's outbox
        in the same transaction, so a committed change always has its event
        and a rolled-back one never does. After the commit the relay moves it
        to the Redis stream and every enabled plugin's ``on_event`` receives
        it in the background, on this runtime or another, at least once
        (``event.id`` is stable across deliveries). Without ``conn`` the event
        is written in a transaction of its own (an event not tied to a change).

        Args:
            name: ``<plugin>.<what>`` (``booking.created``).
            payload: JSON-ready dict (ids, minor units, ISO 8601 UTC times).
            conn: the connection of the open ``tenant.db.transaction()``.

        Returns:
            The event as it will be delivered.

        Raises:
            RuntimeError: ``conn`` is not in a transaction, or the runtime has no event bus.
            TypeError: ``payload`` is not JSON-serialisable.
        """
        if self.events is None:
            raise RuntimeError("this tenant was built without an event bus")
        if conn is not None:
            return await self.events.publish(self, name, payload, conn)
        async with self.db.transaction() as own:
            return await self.events.publish(self, name, payload, own)

    async def events_delivered(self, timeout: float = 10.0) -> bool:
        """Wait until every event this tenant committed so far reached every plugin (tests, drains).

        Returns:
            True when delivered, False after ``timeout`` seconds (a handler
            keeps failing, or no runtime consumes events).
        """
        if self.events is None or not self.serving:
            return True
        from core.errors import STORAGE_UNAVAILABLE

        try:
            return await self.events.delivered(self, timeout)
        except STORAGE_UNAVAILABLE:
            return False  # PostgreSQL or Redis is down: nothing can be delivered now

    @property
    def state(self) -> str:
        """The lifecycle state (:class:`~core.runtime.lifecycle.TenantState`), as the registry set it."""
        return self._lifecycle.state

    @property
    def started_at(self) -> float | None:
        """``time.monotonic()`` when it started running, or None."""
        return self._lifecycle.started_at

    @property
    def serving(self) -> bool:
        """True while the tenant takes updates and requests (``running`` or ``retrying``)."""
        return self._lifecycle.serving

    async def enqueue(
        self, job: str, *, at: datetime | None = None, key: str | None = None, **kwargs: Any
    ) -> bool:
        """Queue the job ``job`` (a JobSpec name of an enabled plugin) for this tenant.

        Args:
            job: the JobSpec name, e.g. ``booking.remind``.
            at: when to run (aware datetime); None runs as soon as possible.
            key: dedupe key within the tenant; a job with the same key that is
                still queued or recently finished is not queued again, so
                several runtimes queueing it at once run it once.
            **kwargs: JSON-ready arguments passed to the job function.

        Returns:
            True when queued, False when a job with ``key`` already exists.

        Raises:
            RuntimeError: the runtime was started without a job queue.
        """
        if self.jobs is None:
            raise RuntimeError("this runtime has no job queue")
        return await self.jobs.enqueue(self.id, job, at=at, key=key, kwargs=kwargs)

    # ------------------------------------------------------------ in-flight tracking

    def track(self) -> _InFlight:
        """``with tenant.track(): ...`` counts an update in flight, so :meth:`drain` can wait for it.

        A plain class rather than a generator-based context manager: it runs
        for every webhook update.
        """
        return _InFlight(self)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait (up to ``timeout`` seconds) until nothing of this tenant is in flight."""
        if self._inflight == 0:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def detail(self) -> str:
        """The explanation of :attr:`state`, without known secrets or Bot API tokens."""
        return self._lifecycle.detail

    @property
    def busy(self) -> bool:
        """True while an update, request or job of this tenant is in flight (:meth:`track`)."""
        return self._inflight > 0

    def describe(self) -> dict[str, Any]:
        """JSON-ready state for ``/health`` and the admin API.

        The ``name`` is redacted like :attr:`detail`: a file may set it from its
        own namespace of the environment (``name: ${ACME_BOT_TOKEN}``), and a
        value read from there is never shown.
        """
        return {
            "id": self.id,
            "name": redact(self.config.name) if self.config.name else self.id,
            "state": self.state,
            "detail": self.detail,
            "mode": self.config.bot.mode,
            "loaded": self.dispatcher is not None,
            "bot_id": self.config.bot.bot_id,
            "features": [f for f in self.features if f != CORE_PLUGIN],
            "schema": self.config.schema,
            "redis_prefix": self.config.redis_prefix,
            "uptime_seconds": round(time.monotonic() - self.started_at, 1)
            if self.started_at
            else None,
        }


class SubsetHooks:
    """Hook callers limited to some plugins (``pm.subset_hook_caller``), built on first use.

    Made by :meth:`core.runtime.contributions.Contributions.hooks_for`, one per
    set of enabled plugins, so tenants enabling the same plugins share them.
    """

    def __init__(self, pm: pluggy.PluginManager, disabled: list[object]):
        self._pm = pm
        self._disabled = disabled
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        caller = self._cache.get(name)
        if caller is None:
            caller = self._pm.subset_hook_caller(name, remove_plugins=self._disabled)
            self._cache[name] = caller
        return caller


class _InFlight:
    """Context manager of :meth:`Tenant.track`."""

    __slots__ = ("tenant",)

    def __init__(self, tenant: Tenant):
        self.tenant = tenant

    def __enter__(self) -> None:
        tenant = self.tenant
        tenant._inflight += 1
        if tenant._idle is not None:
            tenant._idle.clear()

    def __exit__(self, *exc_info: object) -> None:
        tenant = self.tenant
        tenant._inflight -= 1
        if tenant._inflight == 0 and tenant._idle is not None:
            tenant._idle.set()
