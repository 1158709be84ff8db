"""The runtime: shared pools and clients, the tenant registry, and the Litestar app."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pluggy
import structlog
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from redis.asyncio import Redis

from core.api import AdminController, build_plugin_routers, document_webhook, health, webhook
from core.bots import BotHub
from core.db import create_pool
from core.dedupe import UpdateLedger
from core.embedded import EmbeddedServers
from core.errors import STORAGE_UNAVAILABLE
from core.heap import HeapPolicy
from core.jobs import JobRunner, JobSpec
from core.metrics import export_tenant_states
from core.plugins import build_plugin_manager, call_plugin, plugin_names
from core.registry import TenantRegistry
from core.settings import RuntimeSettings
from core.statuses import TransitionError

__all__ = ["Runtime", "create_app"]

log = structlog.get_logger("tenantry.runtime")


class Runtime:
    """Owns everything shared by the tenants of one process.

    Open with :meth:`start` (or the Litestar lifespan), close with :meth:`stop`.

    Attributes:
        settings: the RuntimeSettings.
        pm: the plugin manager.
        pool / redis / ledger / bots / jobs / registry: set by :meth:`start`.
        heap: the process's garbage-collector policy (:mod:`core.heap`).
    """

    def __init__(self, settings: RuntimeSettings, pm: pluggy.PluginManager | None = None):
        self.settings = settings
        self.pm = pm or build_plugin_manager()
        self.embedded = EmbeddedServers()
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self.redis: Redis = None  # type: ignore[assignment]
        self.bots: BotHub = None  # type: ignore[assignment]
        self.jobs: JobRunner | None = None
        self.ledger: UpdateLedger | None = None
        self.registry: TenantRegistry = None  # type: ignore[assignment]
        self.heap = HeapPolicy(settings.gc_freeze, settings.gc_gen0_threshold)
        self._background: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        """Connect (or start the embedded servers), then start every valid tenant.

        Raises:
            OSError, asyncpg.PostgresError, redis.RedisError: a server cannot be reached.
        """
        settings = self.settings
        database_url = settings.database_url or await asyncio.to_thread(
            self.embedded.start_postgres, settings.data_dir / "pg"
        )
        redis_url = settings.redis_url or await asyncio.to_thread(
            self.embedded.start_redis, settings.data_dir / "redis.db"
        )
        self.pool = await create_pool(
            database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        self.redis = connect_redis(redis_url)
        await self.redis.ping()
        self.ledger = UpdateLedger(self.redis)
        self.ledger.start()
        self.bots = BotHub(
            self.redis, settings.bot_api_url, settings.public_url, settings.resolved_secret_key()
        )
        specs: dict[str, tuple[str, JobSpec]] = {}
        for name in plugin_names(self.pm):
            for spec in call_plugin(self.pm, name, "register_jobs") or ():
                specs[spec.name] = (name, spec)
        self.jobs = JobRunner(
            redis_url,
            settings.queue_name,
            lambda: self.registry.tenants,
            specs,
            concurrency=settings.job_concurrency,
        )
        self.registry = TenantRegistry(
            self.pm,
            self.pool,
            self.redis,
            self.bots,
            self.jobs,
            settings.tenants_dir,
            on_retired=self.heap.tenant_retired,
        )
        if settings.run_jobs:
            await self.jobs.start()
        else:
            await self.jobs.queue.connect()
        await self.registry.sync()
        if settings.watch:
            self._background.append(
                asyncio.create_task(self.registry.watch(), name="tenantry-watch")
            )
        export_tenant_states(self.registry)
        self.heap.apply()
        log.info(
            "runtime_started", tenants=len(self.registry.tenants), bot_api=settings.bot_api_url
        )

    async def stop(self) -> None:
        """Stop tenants (draining in-flight updates), jobs, and close every client."""
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.registry is not None:
            await self.registry.stop_all()
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
        await asyncio.to_thread(self.embedded.close)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Litestar lifespan: start on startup, stop on shutdown."""
        app.state.runtime = self
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def connect_redis(url: str) -> Redis:
    """The runtime's shared Redis client (``decode_responses=True``).

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
    options: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": 5}
    if not url.startswith("unix://"):
        options.update(socket_keepalive=True, socket_keepalive_options=keepalive)
    return Redis.from_url(url, **options)


def _transition_error(request: Request[Any, Any, Any], exc: TransitionError) -> Response[Any]:
    # An unknown status is a malformed request (400); a known one that the
    # machine does not allow now conflicts with the entity's state (409).
    status = 400 if exc.unknown_target else 409
    return Response(
        {
            "status_code": status,
            "detail": exc.reason,
            "current": exc.current,
            "allowed": exc.allowed,
        },
        status_code=status,
    )


def _storage_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # PostgreSQL or Redis could not be reached or refused a connection: a
    # transient server-side condition, not a bug; clients should retry.
    log.warning("storage_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return Response(
        {"status_code": 503, "detail": "storage temporarily unavailable, retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _log_unhandled(exception: BaseException, scope: Any) -> None:
    """after_exception hook: log server errors with the tenant, since they become bare 500s."""
    if isinstance(exception, HTTPException) and exception.status_code < 500:
        return
    if isinstance(exception, STORAGE_UNAVAILABLE):
        return  # answered 503 and logged as storage_unavailable
    path_params = scope.get("path_params") or {}
    log.error(
        "request_failed",
        tenant=path_params.get("tenant_id"),
        method=scope.get("method"),
        path=scope.get("path"),
        exc_info=exception,
    )


def create_app(
    settings: RuntimeSettings | None = None, pm: pluggy.PluginManager | None = None
) -> Litestar:
    """Build the Litestar app serving every tenant.

    Routes: ``POST /webhook/{tenant_id}``, ``GET /health``, ``GET /metrics``,
    ``/admin/...``, plugin routes under ``/api/tenants/{tenant_id}/<plugin>``,
    OpenAPI at ``/schema``. The runtime starts in the app's lifespan and is
    reachable as ``app.state.runtime``.
    """
    runtime = Runtime(settings or RuntimeSettings.from_env(), pm)
    prometheus = PrometheusConfig(
        app_name="tenantry",
        prefix="tenantry_http",
        group_path=True,
        labels={"tenant": lambda request: request.path_params.get("tenant_id", "")},
        # The webhook has its own per-tenant metrics (core.metrics), cheaper on the hot path.
        exclude=["/metrics", "/health", "^/webhook/"],
    )
    app = Litestar(
        route_handlers=[
            webhook,
            health,
            AdminController,
            PrometheusController,
            *build_plugin_routers(runtime.pm),
        ],
        lifespan=[runtime.lifespan],
        middleware=[prometheus.middleware],
        exception_handlers={
            TransitionError: _transition_error,
            **dict.fromkeys(STORAGE_UNAVAILABLE, _storage_unavailable),
        },
        after_exception=[_log_unhandled],
        openapi_config=OpenAPIConfig(title="Tenantry", version="0.1.0", path="/schema"),
        debug=False,
        # Logging is configured once by core.logging (structlog JSON); Litestar
        # would otherwise install its own stdlib handlers on startup.
        logging_config=None,
    )
    app.state.runtime = runtime
    document_webhook(app)
    return app
