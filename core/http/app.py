"""The runtime: shared pools and clients, the tenant registry, and the Litestar app."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pluggy
import structlog
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIMediaType, Reference
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.config.model import ConfigError
from core.errors import (
    PROBLEM_MEDIA_TYPE,
    STORAGE_UNAVAILABLE,
    ApiError,
    BadRequest,
    Conflict,
    Problem,
    ServiceUnavailable,
    Unprocessable,
    internal_error,
    problem_from_http_exception,
)
from core.events.bus import EventBus
from core.http.admin import AdminController
from core.http.admin_tokens import AdminTokens
from core.http.assets import openapi_assets_router, openapi_render_plugins
from core.http.health import health
from core.http.mounts import build_plugin_routers
from core.http.webhook import document_webhook, webhook
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
from core.storage.statuses import TransitionError
from core.updates.bots import BotHub
from core.updates.dedupe import UpdateLedger
from core.updates.metrics import export_tenant_states
from core.web.mount import build_web_routers, web_template_config

__all__ = ["Runtime", "create_app"]

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
        """Litestar lifespan: start on startup, stop on shutdown."""
        app.state.runtime = self
        await self.start()
        try:
            yield
        finally:
            await self.stop()


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


def _transition_error(exc: TransitionError) -> ApiError:
    """The problem answer of a refused status change, with ``current``, ``target`` and ``allowed``.

    An unknown status is a malformed request (400 ``status.unknown``); a known
    one that the machine does not allow now conflicts with the entity's
    state (409 ``status.not_allowed``).
    """
    error_class = BadRequest if exc.unknown_target else Conflict
    return error_class(
        "status.unknown" if exc.unknown_target else "status.not_allowed",
        exc.reason,
        current=exc.current,
        target=exc.target,
        allowed=exc.allowed,
    )


def _storage_unavailable(exc: Exception) -> ApiError:
    # PostgreSQL or Redis could not be reached or refused a connection: a
    # transient server-side condition, not a bug; clients should retry.
    return ServiceUnavailable(
        "storage.unavailable", "storage temporarily unavailable, retry shortly", retry_after=1
    )


def _value_refused(exc: asyncpg.DataError) -> ApiError:
    # PostgreSQL (or asyncpg, before sending) refused a value the request
    # carried: an integer beyond bigint, a NUL in a text, a date out of range
    # (SQLSTATE class 22, data exception). The statement's transaction rolled
    # back, so nothing was written; the client sent a value we cannot store.
    reason = str(exc).split("\n", 1)[0]
    if "query argument" in reason:
        # "invalid input for query argument $1: <value> (...)": keep only the why.
        reason = reason.rsplit("(", 1)[-1].rstrip(")") if "(" in reason else "invalid value"
    return Unprocessable("request.value_out_of_range", f"a value cannot be stored: {reason}")


def _refusal_status(exception: BaseException) -> int | None:
    """The status a deliberate refusal is answered with; None for a crash (a bug)."""
    if isinstance(exception, ApiError):
        return exception.status_code
    if isinstance(exception, HTTPException):
        # Litestar's own InternalServerException and the like are crashes.
        status = exception.status_code
        return status if status < 500 or status == 503 else None
    if isinstance(exception, TransitionError):
        return 400 if exception.unknown_target else 409
    if isinstance(exception, asyncpg.DataError):
        return 422
    return None


async def _log_unhandled(exception: BaseException, scope: Any) -> None:
    """after_exception hook: log each error answer once, with the tenant.

    A refusal (a 4xx, or a deliberate 503) is logged at info, at warning for
    401 and 403 (someone presents wrong credentials) and for 503, without a
    traceback: it is the client's problem or a known condition, not a crash.
    PostgreSQL/Redis outages are ``storage_unavailable`` warnings. Anything
    else is a bug: ``request_failed`` at error, with the traceback.
    """
    path_params = scope.get("path_params") or {}
    where = {
        "tenant": path_params.get("tenant_id"),
        "method": scope.get("method"),
        "path": scope.get("path"),
    }
    if isinstance(exception, STORAGE_UNAVAILABLE):
        log.warning(
            "storage_unavailable", error=f"{type(exception).__name__}: {exception}", **where
        )
        return
    status = _refusal_status(exception)
    if status is None:
        log.error("request_failed", exc_info=exception, **where)
        return
    if isinstance(exception, TransitionError):
        refusal = _transition_error(exception)
    elif isinstance(exception, asyncpg.DataError):
        refusal = _value_refused(exception)
    elif isinstance(exception, ApiError):
        refusal = exception
    else:  # Litestar's own (validation, 404, 405): logged with the code it is answered with
        refusal = problem_from_http_exception(exception)  # type: ignore[arg-type]
    code, detail = refusal.code, refusal.detail
    level = log.warning if status in (401, 403) or status >= 500 else log.info
    level("request_refused", status=status, code=code, detail=detail, **where)


def _is_problem(schema: Any) -> bool:
    ref = schema.get("$ref") if isinstance(schema, dict) else getattr(schema, "ref", None)
    return ref == "#/components/schemas/Problem"


def _document_problems(app: Litestar) -> None:
    """Give every 4xx and 5xx answer of the OpenAPI document the :class:`~core.errors.Problem` body.

    Litestar documents the errors it knows of (validation 400, ``raises=``)
    with its default ``{status_code, detail, extra}`` shape; the runtime
    answers them as ``application/problem+json``, so the document says so.
    """
    document = app.openapi_schema
    if document.components.schemas is None:
        document.components.schemas = {}
    (problem_ref,), schemas = msgspec.json.schema_components(
        [Problem], ref_template="#/components/schemas/{name}"
    )
    document.components.schemas.update(schemas)
    media = OpenAPIMediaType(schema=Reference(ref=problem_ref["$ref"]))
    for path_item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            if operation is None or not operation.responses:
                continue
            for status, response in operation.responses.items():
                if str(status)[:1] not in ("4", "5") or isinstance(response, Reference):
                    continue
                if any(_is_problem(m.schema) for m in (response.content or {}).values()):
                    continue  # documented by hand already (the webhook), media type included
                response.content = {PROBLEM_MEDIA_TYPE: media}


def create_app(
    settings: RuntimeSettings | None = None, pm: pluggy.PluginManager | None = None
) -> Litestar:
    """Build the Litestar app serving every tenant.

    Routes: ``POST /webhook/{tenant_id}``, ``GET /health``, ``GET /metrics``,
    ``/admin/...``, plugin routes under ``/api/tenants/{tenant_id}/<plugin>``,
    web pages under ``/web/{tenant_id}/`` (:mod:`core.web.mount`), OpenAPI at
    ``/schema``. The runtime starts in the app's lifespan and is
    reachable as ``app.state.runtime``.
    """
    runtime = Runtime(settings or RuntimeSettings.from_env(), pm)
    prometheus = PrometheusConfig(
        app_name="tenantry",
        prefix="tenantry_http",
        group_path=True,
        labels={"tenant": lambda request: request.path_params.get("tenant_id", "")},
        # The webhook has its own per-tenant metrics (core.updates.metrics), cheaper on the hot path.
        exclude=["/metrics", "/health", "^/webhook/"],
    )
    app = Litestar(
        route_handlers=[
            webhook,
            health,
            AdminController,
            PrometheusController,
            openapi_assets_router(),
            *build_plugin_routers(runtime.pm),
            *build_web_routers(runtime.pm, runtime.settings.public_url),
        ],
        # The staff pages and customer WebApps (core.web): Jinja templates of the core and plugins.
        template_config=web_template_config(runtime.pm),
        lifespan=[runtime.lifespan],
        middleware=[prometheus.middleware],
        # One problem body (RFC 9457) for every error answer: ApiError renders
        # itself; the map converts everything else (core.errors).
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    exception_to_problem_detail_map={
                        HTTPException: problem_from_http_exception,
                        TransitionError: _transition_error,
                        asyncpg.DataError: _value_refused,
                        **dict.fromkeys(STORAGE_UNAVAILABLE, _storage_unavailable),
                        Exception: internal_error,
                    }
                )
            )
        ],
        after_exception=[_log_unhandled],
        # Swagger UI from the package, not a CDN: /schema works offline.
        openapi_config=OpenAPIConfig(
            title="Tenantry",
            version="0.1.0",
            path="/schema",
            render_plugins=openapi_render_plugins(),
        ),
        debug=False,
        # Logging is configured once by core.runtime.logging (structlog JSON); Litestar
        # would otherwise install its own stdlib handlers on startup.
        logging_config=None,
    )
    app.state.runtime = runtime
    document_webhook(app)
    _document_problems(app)
    return app


def _code_fingerprint(pm: pluggy.PluginManager) -> str:
    """This release's code as bot registration sees it: the package version and the plugins."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("tenantry")
    except PackageNotFoundError:
        release = "unreleased"
    return release + ":" + ",".join(sorted(name for name, _ in pm.list_name_plugin()))
