"""The runtime of one process: shared pools and clients, the tenant registry, and their lifecycle.

A :class:`Runtime` is opened and closed by the Litestar app's lifespan, through
:class:`core.http.plugin.RuntimePlugin`, which also hands it to route handlers
through Litestar DI.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import pluggy
import structlog
from litestar.di import NamedDependency
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.config.model import ConfigError
from core.errors import STORAGE_UNAVAILABLE
from core.events.bus import EventBus
from core.http.admin_tokens import AdminTokens
from core.runtime.audit import AuditLog
from core.runtime.contributions import contributions_of
from core.runtime.control import ClaimStore, prepare_control_schema
from core.runtime.embedded import EmbeddedServers
from core.runtime.heap import HeapPolicy
from core.runtime.plugins import build_plugin_manager
from core.runtime.redaction import forget_secrets, register_secrets, runtime_secrets
from core.runtime.rediscluster import connect_cluster, is_cluster_url
from core.runtime.rediscluster import queue_redis_url as queue_redis_url_of
from core.runtime.registry import TenantRegistry
from core.runtime.settings import RuntimeSettings
from core.runtime.store import StoreFollower, TenantStore
from core.storage.db import create_pool
from core.storage.jobs import JobRunner, JobSpec
from core.updates.bots import BotHub
from core.updates.dedupe import UpdateLedger
from core.updates.metrics import export_tenant_states

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["Runtime", "RuntimeDep", "connect_redis"]

log = structlog.get_logger("tenantry.runtime")


class Runtime:
    """Owns everything shared by the tenants of one process.

    Open with :meth:`start` (or the Litestar lifespan), close with :meth:`stop`.

    Attributes:
        settings: the RuntimeSettings.
        pm: the plugin manager.
        pool / redis / ledger / bots / jobs / registry / events: set by
            :meth:`start` (``events``: :class:`core.events.bus.EventBus`).
            ``pool`` is the default PostgreSQL server's (``TENANTRY_DATABASE_URL``).
        pools: the pools of the other servers tenants are placed on
            (``storage.database``, :attr:`RuntimeSettings.databases`), by name.
        admin_tokens: the tokens ``/admin`` accepts (:mod:`core.http.admin_tokens`),
            read by :meth:`start`.
        claims / audit: storage claims and the audit log in the control
            schema (:mod:`core.runtime.control`, :mod:`core.runtime.audit`), set by :meth:`start`.
        store / follower: the tenant store every runtime on the database
            follows, and what keeps this runtime following it
            (:mod:`core.runtime.store`), set by :meth:`start`.
        heap: the process's garbage-collector policy (:mod:`core.runtime.heap`).
    """

    def __init__(self, settings: RuntimeSettings, pm: pluggy.PluginManager | None = None):
        self.settings = settings
        self.pm = pm or build_plugin_manager()
        self.embedded = EmbeddedServers()
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self.pools: dict[str, asyncpg.Pool] = {}
        self.redis: Redis = None  # type: ignore[assignment]
        self.bots: BotHub = None  # type: ignore[assignment]
        self.jobs: JobRunner | None = None
        self.ledger: UpdateLedger | None = None
        self.registry: TenantRegistry = None  # type: ignore[assignment]
        self.events: EventBus | None = None
        self.admin_tokens = AdminTokens(None)
        self.claims: ClaimStore = None  # type: ignore[assignment]
        self.audit: AuditLog = None  # type: ignore[assignment]
        self.store: TenantStore = None  # type: ignore[assignment]
        self.follower: StoreFollower | None = None
        self.heap = HeapPolicy(settings.gc_freeze, settings.gc_gen0_threshold)
        self._background: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Connect (or start the embedded servers), then start every valid tenant.

        Raises:
            ConfigError: the admin tokens file is invalid (file, line and field named).
            OSError, asyncpg.PostgresError, redis.RedisError: a server cannot be reached.
            ValueError: ``TENANTRY_REDIS_URL`` is a cluster and no plain
                ``TENANTRY_QUEUE_REDIS_URL`` is set (:func:`core.runtime.rediscluster.queue_redis_url`).
            MigrationError: the control schema cannot be migrated.
        """
        settings = self.settings
        try:
            self.admin_tokens = AdminTokens.from_settings(
                settings.admin_token, settings.admin_tokens, settings.admin_tokens_file
            )
        except ConfigError as exc:
            log.error("admin_tokens_rejected", errors=[str(i) for i in exc.issues])
            raise
        database_url = settings.database_url or await asyncio.to_thread(
            self.embedded.start_postgres, settings.data_dir / "pg"
        )
        redis_url = settings.redis_url or await asyncio.to_thread(
            self.embedded.start_redis, settings.data_dir / "redis.db"
        )
        # Before the first connection, whose errors may quote the DSN.
        register_secrets(
            self,
            runtime_secrets(
                settings, database_url, redis_url, extra_urls=settings.databases.values()
            ),
        )
        # Before any connection too: a cluster without a plain Redis for saq and
        # Channels is a configuration error, not a failure at the first job.
        try:
            queue_redis_url = queue_redis_url_of(settings, redis_url)
        except ValueError as exc:
            log.error("redis_misconfigured", error=str(exc))
            raise
        self.pool = await create_pool(
            database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            transaction_pooling=settings.transaction_pooling,
        )
        # LISTEN needs a session of its own on the server itself, not a pooler's.
        listen_url = settings.database_listen_url or database_url
        for name, url in settings.databases.items():
            # Same sizes as the default pool: the connection budget per runtime
            # is servers x pool_max_size (docs/ops.md, "Placement").
            self.pools[name] = await create_pool(
                url,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                transaction_pooling=settings.transaction_pooling,
            )
        applied = await prepare_control_schema(self.pool, settings.control_schema)
        if applied:
            log.info("migrations_applied", schema=settings.control_schema, migrations=applied)
        self.claims = ClaimStore(self.pool, settings.control_schema)
        self.store = TenantStore(self.pool, settings.control_schema)
        self.audit = AuditLog(self.pool, settings.control_schema, settings.resolved_secret_key())
        self.redis = connect_redis(redis_url)
        await self.redis.ping()
        self.ledger = UpdateLedger(self.redis)
        self.ledger.start()
        self.bots = BotHub(
            self.redis,
            self.ledger,
            settings.bot_api_url,
            settings.public_url,
            settings.resolved_secret_key(),
            code=_code_fingerprint(self.pm),
        )
        specs: dict[str, tuple[str, JobSpec]] = {}
        for name, job_specs in contributions_of(self.pm).jobs.items():
            for spec in job_specs:
                specs[spec.name] = (name, spec)
        self.jobs = JobRunner(
            queue_redis_url,
            settings.queue_name,
            lambda: self.registry.tenants,
            specs,
            concurrency=settings.job_concurrency,
        )
        self.events = EventBus(
            settings,
            listen_url,
            self.pool,
            self.redis,
            self.pm,
            lambda: self.registry.tenants,
            other_dsns=settings.databases,
        )
        self.registry = TenantRegistry(
            self.pm,
            self.pool,
            self.redis,
            self.bots,
            self.jobs,
            settings.tenants_dir,
            on_retired=self.heap.tenant_retired,
            claims=self.claims,
            on_change=self.audit.tenant_changed,
            tenant_env_allow=settings.tenant_env_allow,
            listen_host=settings.listen_host,
            events=self.events,
            store=self.store,
            control_schema=settings.control_schema,
            lazy_bots=settings.tenants_idle_seconds > 0,
            transaction_pooling=settings.transaction_pooling,
            pools=self.pools,
        )
        self.follower = StoreFollower(
            listen_url,
            self.store.channel,
            self.registry.apply_store,
            reread_seconds=settings.tenants_reread_seconds,
        )
        if settings.run_jobs:
            await self.jobs.start()
        else:
            await self.jobs.queue.connect()
        # Which tenant files the audit log holds already: one query, not one per tenant.
        with contextlib.suppress(*STORAGE_UNAVAILABLE, asyncpg.PostgresError):
            await self.audit.prime()
        # Listening before the first read, so no change falls in between.
        self.follower.start()
        # The imports' heap frozen first: the tenants' start does not walk it again and again.
        self.heap.apply()
        await self.registry.sync()
        # After the tenants are known: a consumer drops events of tenants it does not hold.
        await self.events.start(consume=settings.run_events)
        if settings.watch:
            self._background.append(
                asyncio.create_task(self.registry.watch(), name="tenantry-watch")
            )
        if settings.tenants_idle_seconds > 0:
            unloader = self.registry.run_unloader(
                settings.tenants_idle_seconds, settings.tenants_loaded_max
            )
            self._background.append(asyncio.create_task(unloader, name="tenantry-unloader"))
        export_tenant_states(self.registry)
        self.heap.settle()
        log.info(
            "runtime_started", tenants=len(self.registry.tenants), bot_api=settings.bot_api_url
        )

    async def stop(self) -> None:
        """Stop tenants (draining in-flight updates), jobs, and close every client."""
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.follower is not None:
            await self.follower.stop()
        if self.registry is not None:
            await self.registry.stop_all()
        if self.events is not None:
            await self.events.stop()
        self.heap.restore()
        if self.jobs is not None:
            with contextlib.suppress(Exception):
                if self.settings.run_jobs:
                    await self.jobs.stop()
                else:
                    await self.jobs.queue.disconnect()
        if self.ledger is not None:
            await self.ledger.stop()
        if self.bots is not None:
            await self.bots.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()
        for pool in self.pools.values():
            await pool.close()
        self.pools = {}
        await asyncio.to_thread(self.embedded.close)
        forget_secrets(self)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Litestar lifespan: start on startup, stop on shutdown (:class:`core.http.plugin.RuntimePlugin`)."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()


RuntimeDep: TypeAlias = NamedDependency[Runtime]
"""Annotate a route handler parameter ``runtime: RuntimeDep`` to receive the runtime
(provided by :class:`core.http.plugin.RuntimePlugin`)."""


def connect_redis(url: str) -> Redis:
    """The runtime's shared Redis client (``decode_responses=True``).

    A ``redis+cluster://`` URL gives a :class:`redis.asyncio.cluster.RedisCluster`
    with the same options (:mod:`core.runtime.rediscluster`).

    No per-command ``socket_timeout``: redis-py wraps every command send in
    ``asyncio.wait_for`` when it is set, which on Python 3.11 creates a task
    per command and was the largest overhead on the webhook path. A dead
    server or network path is still noticed: connecting times out after 5 s,
    and TCP keepalive (idle 10 s, probes every 5 s, 3 probes) breaks a
    connection whose peer vanished within about 25 s.
    """
    keepalive: dict[int, int] = {}
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            keepalive[getattr(socket, name)] = value
    # socket_timeout=None said out loud: redis-py 8 gives every connection a 5 s
    # read timeout when the option is absent, and with it the wait_for per command.
    # max_connections: redis-py 8 caps a pool at 100 and then raises instead of
    # waiting; a runtime with a thousand WebSocket clients and a few blocking
    # event reads needs more at peaks (Redis' own maxclients is 10000).
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "socket_timeout": None,
        "max_connections": 2000,
    }
    if not url.startswith("unix://"):
        options.update(socket_keepalive=True, socket_keepalive_options=keepalive)
    if is_cluster_url(url):
        # max_connections is then per node.
        return connect_cluster(url, **options)  # type: ignore[return-value]
    # One immediate retry on a connection error: after a Redis restart every
    # pooled connection is dead and failed its next command once, whenever
    # it was next taken from the pool (seconds later at a load peak: 503s
    # and a degraded /health long after Redis was back). The retry runs on a
    # new connection; while Redis is down it is refused at once too.
    # (tests/test_failover_storage.py)
    return Redis.from_url(url, retry=Retry(NoBackoff(), 1), **options)


def _code_fingerprint(pm: pluggy.PluginManager) -> str:
    """This release's code as bot registration sees it: the package version and the plugins."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("tenantry")
    except PackageNotFoundError:
        release = "unreleased"
    return release + ":" + ",".join(sorted(name for name, _ in pm.list_name_plugin()))
