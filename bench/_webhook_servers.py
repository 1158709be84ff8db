"""The servers ``bench/webhook.py`` compares, and how a run spawns them.

:class:`BenchContext` is what every part of a run shares: the PostgreSQL,
Redis and Bot API stand-in it runs against, the tenants it generated
(:class:`BenchTenant`) and what to clean up afterwards. :func:`start_runtime`
spawns Tenantry (``python -m core.cli run``) and :func:`wait_all_running`
waits until its tenants run; :func:`start_baseline` spawns plain aiogram, or
aiogram with a plain Redis dedupe, and :func:`start_bot_api` the Bot API
stand-in. Those two run ``bench/webhook.py`` in a hidden child role
(``--serve-aiogram``, ``--serve-botapi``): :func:`serve_aiogram` and
:func:`serve_botapi` are what such a child runs. :func:`find_py_spy` finds
the profiler both parts' ``--profile*`` options spawn.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    PYTHON,
    Child,
    child_env,
    free_port,
    wait_http,
)

from core.testing.updates import UpdateFactory
from core.updates.bots import webhook_secret

# The script the child roles (--serve-botapi, --serve-aiogram) run as.
ENTRY_POINT = str(Path(__file__).with_name("webhook.py"))
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Lines of a runtime's JSON log (and of tracebacks) worth reporting.
LOG_PROBLEMS = ('"level": "error"', '"level": "warning"', "traceback")
TENANTRY = "Tenantry POST /webhook/{id}"
AIOGRAM = "aiogram SimpleRequestHandler"
AIOGRAM_DEDUPE = "aiogram + plain Redis dedupe"
# Both servers get the runtime's default pool size, so neither waits for connections more.
POOL_MIN, POOL_MAX = 2, 20
# A tenant's connection cap (storage.max_connections, default 5) would let the one
# bench tenant use 5 of those 20 while plain aiogram uses all of them: give every
# generated tenant, and the baseline's TenantDB, the largest cap the pool allows
# (docs/benchmarks.md#webhook; --tenant-max-connections 5 measures the default).
TENANT_MAX_CONNECTIONS = POOL_MAX - 1
# Every runtime of a run registers webhooks at this one address, as runtimes behind
# a load balancer do (the stand-in only records it): a restart is then the same
# registration, and its tenants' bots are built at their first update.
PUBLIC_URL = "https://bench-lb.example"


# ---------------------------------------------------------------- setup


@dataclass
class BenchContext:
    """What every part of one benchmark run shares.

    Attributes:
        database_url / redis_url: the servers under test.
        work_dir: temporary folder of tenant files and child logs.
        tag: random tag in every schema, Redis prefix, tenant id and queue name.
        secret_key: ``TENANTRY_SECRET_KEY`` of every runtime (derives webhook secrets).
        bot_api: the Bot API stand-in process, once started.
        bot_api_url: its base URL.
        schemas / redis_patterns: what to drop and delete at the end.
        control_schema: ``TENANTRY_CONTROL_SCHEMA`` of every runtime of this run,
            so their storage claims and audit rows go to a schema of their own
            (dropped at the end) instead of accumulating in the shared ``tenantry``.
        next_bot_id: the next unused bot id (token prefix).
        next_user_id: the next unused Telegram user id.
        max_connections: ``storage.max_connections`` of every generated tenant.
    """

    database_url: str
    redis_url: str
    work_dir: Path
    tag: str = field(default_factory=lambda: "wb" + secrets.token_hex(3))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    bot_api: Child | None = None
    bot_api_url: str = ""
    schemas: set[str] = field(default_factory=set)
    redis_patterns: set[str] = field(default_factory=set)
    next_bot_id: int = field(default_factory=lambda: 700_000_000 + secrets.randbelow(10**8))
    next_user_id: int = field(default_factory=lambda: 5_000_000_000 + secrets.randbelow(10**9))
    control_schema: str = ""
    max_connections: int = TENANT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        self.control_schema = self.control_schema or f"{self.tag}_control"
        self.schemas.add(self.control_schema)

    def runtime_env(self, tenants_dir: Path, port: int, queue: str) -> dict[str, str]:
        """Environment of a runtime (or the baseline) on ``port`` serving ``tenants_dir``."""
        self.redis_patterns.add(f"saq:*{queue}*")
        return child_env(
            TENANTRY_DATABASE_URL=self.database_url,
            TENANTRY_REDIS_URL=self.redis_url,
            TENANTRY_BOT_API_URL=self.bot_api_url,
            TENANTRY_PUBLIC_URL=PUBLIC_URL,
            TENANTRY_TENANTS_DIR=str(tenants_dir),
            TENANTRY_DATA_DIR=str(self.work_dir / "data"),
            TENANTRY_SECRET_KEY=self.secret_key,
            TENANTRY_CONTROL_SCHEMA=self.control_schema,
            TENANTRY_QUEUE=queue,
            TENANTRY_WATCH="0",
            TENANTRY_DB_POOL_MIN=str(POOL_MIN),
            TENANTRY_DB_POOL_MAX=str(POOL_MAX),
        )

    def write_tenants(self, folder: Path, count: int, label: str) -> list[BenchTenant]:
        """Write ``count`` webhook tenant files into ``folder``; return them."""
        folder.mkdir(parents=True)
        tenants = []
        for index in range(count):
            tenant_id = f"{self.tag}_{label}{index}"
            self.next_bot_id += 1
            tenant = BenchTenant(
                id=tenant_id,
                schema=tenant_id,
                redis_prefix=f"{self.tag}:{label}{index}:",
                bot_id=self.next_bot_id,
                secret=webhook_secret(self.secret_key, tenant_id),
                max_connections=self.max_connections,
            )
            self.schemas.add(tenant.schema)
            (folder / f"{tenant_id}.yaml").write_text(tenant.yaml(), encoding="utf-8")
            tenants.append(tenant)
        self.redis_patterns.add(f"{self.tag}:*")
        return tenants

    def start_bodies(
        self, tenants: Sequence[BenchTenant], count: int
    ) -> list[tuple[BenchTenant, bytes]]:
        """``count`` ``/start`` update bodies, each from a new user, spread over ``tenants``."""
        factory = UpdateFactory()
        bodies = []
        for index in range(count):
            self.next_user_id += 1
            update = factory.command(
                "start", user_id=self.next_user_id, username=f"u{self.next_user_id}"
            )
            bodies.append((tenants[index % len(tenants)], json.dumps(update).encode()))
        return bodies


@dataclass
class BenchTenant:
    """A generated tenant: id, schema, Redis prefix, bot and its webhook secret."""

    id: str
    schema: str
    redis_prefix: str
    bot_id: int
    secret: str
    max_connections: int = TENANT_MAX_CONNECTIONS

    def yaml(self) -> str:
        """The tenant file: a webhook bot with only the core plugin."""
        return (
            f"id: {self.id}\n"
            f"name: Bench {self.id}\n"
            "timezone: UTC\n"
            "locale: en\n"
            "bot:\n"
            f'  token: "{self.bot_id}:bench-{self.id}"\n'
            "  mode: webhook\n"
            "storage:\n"
            f"  schema: {self.schema}\n"
            f'  redis_prefix: "{self.redis_prefix}"\n'
            f"  max_connections: {self.max_connections}\n"
        )


def requests_for(
    base_url: str, bodies: Sequence[tuple[BenchTenant, bytes]]
) -> list[tuple[str, bytes, dict[str, str]]]:
    """``(url, body, headers)`` posting each body to its tenant's webhook as Telegram does."""
    return [
        (
            f"{base_url}/webhook/{tenant.id}",
            body,
            {"Content-Type": "application/json", SECRET_HEADER: tenant.secret},
        )
        for tenant, body in bodies
    ]


async def start_bot_api(ctx: BenchContext, session: aiohttp.ClientSession) -> None:
    """Start the Bot API stand-in in its own process and wait until it answers."""
    port = free_port()
    ctx.bot_api = Child(
        "bot-api stand-in",
        [PYTHON, ENTRY_POINT, "--serve-botapi", "--port", str(port)],
        child_env(),
        ctx.work_dir / "botapi.log",
    )
    ctx.bot_api_url = f"http://127.0.0.1:{port}"
    await wait_http(session, f"{ctx.bot_api_url}/_calls?method=none", ctx.bot_api, timeout=30)


async def bot_api_calls(
    ctx: BenchContext, session: aiohttp.ClientSession, method: str
) -> dict[int, int]:
    """Calls of ``method`` recorded by the stand-in, counted by bot id."""
    async with session.get(f"{ctx.bot_api_url}/_calls", params={"method": method}) as response:
        calls = await response.json(content_type=None)
    counts: dict[int, int] = {}
    for call in calls:
        counts[call["bot_id"]] = counts.get(call["bot_id"], 0) + 1
    return counts


async def clear_bot_api(ctx: BenchContext, session: aiohttp.ClientSession) -> None:
    """Forget the stand-in's recorded calls (they are kept in its memory)."""
    async with session.delete(f"{ctx.bot_api_url}/_calls") as response:
        await response.read()


def start_runtime(
    ctx: BenchContext,
    tenants_dir: Path,
    name: str,
    extra_env: dict[str, str] | None = None,
    code_dir: Path | None = None,
) -> tuple[Child, str]:
    """Spawn ``python -m core.cli run`` for ``tenants_dir``; return it and its base URL.

    ``extra_env`` is added to the runtime's environment (``TENANTRY_*`` included).
    ``code_dir`` runs the ``core`` package of another checkout (a ``git worktree``
    of an older commit, say) instead of this one: it becomes the child's working
    directory and ``PYTHONPATH``.
    """
    port = free_port()
    env = ctx.runtime_env(tenants_dir, port, f"tenantry-bench-{ctx.tag}-{name}")
    env.update(extra_env or {})
    if code_dir is not None:
        env["PYTHONPATH"] = str(code_dir)
    child = Child(
        name,
        [
            PYTHON,
            "-m",
            "core.cli",
            "run",
            "--tenants",
            str(tenants_dir),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        env,
        ctx.work_dir / f"{name}.log",
        cwd=code_dir,
    )
    return child, f"http://127.0.0.1:{port}"


async def wait_all_running(
    session: aiohttp.ClientSession, base_url: str, child: Child, count: int, timeout: float
) -> tuple[float, dict[str, int]]:
    """Poll ``GET /health`` until ``count`` tenants are ``running``.

    Returns:
        Seconds from the child's spawn until then, and the tenants by state at
        that moment (or at the timeout).

    Raises:
        RuntimeError: the child exited, or not every tenant ran within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        _, health = await wait_http(
            session, f"{base_url}/health", child, timeout=deadline - time.monotonic(), interval=0.1
        )
        answered = time.monotonic()
        body = json.loads(health)
        states = {}
        for tenant in body.get("tenants", []):
            states[tenant["state"]] = states.get(tenant["state"], 0) + 1
        if states.get("running", 0) == count:
            return answered - child.spawned_at, states
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name}: not every tenant running after {timeout:.0f} s: {states}")


def start_baseline(ctx: BenchContext, dedupe: bool) -> tuple[Child, str, BenchTenant]:
    """Spawn the aiogram baseline (see :func:`serve_aiogram`) with one generated tenant."""
    label = "aiogram-dedupe" if dedupe else "aiogram"
    folder = ctx.work_dir / f"throughput-{label}"
    [tenant] = ctx.write_tenants(folder, 1, "d" if dedupe else "a")
    port = free_port()
    argv = [PYTHON, ENTRY_POINT, "--serve-aiogram", str(folder / f"{tenant.id}.yaml")]
    argv += ["--port", str(port), *(["--dedupe"] if dedupe else [])]
    child = Child(
        label,
        argv,
        ctx.runtime_env(folder, port, f"tenantry-bench-{ctx.tag}-{label}"),
        ctx.work_dir / f"{label}.log",
    )
    return child, f"http://127.0.0.1:{port}", tenant


def find_py_spy() -> str:
    """The py-spy executable on PATH or next to this Python.

    Raises:
        RuntimeError: it is not installed.
    """
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return py_spy


# ---------------------------------------------------------------- child roles


def serve_botapi(port: int) -> None:
    """Run the Bot API stand-in without its per-call INFO log lines (they cost CPU)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from core.testing.botapi import main

    main(["--port", str(port)])


def serve_aiogram(tenant_file: Path, port: int, dedupe: bool) -> None:
    """Run the baseline: one aiogram bot on aiohttp's web server with the core's router.

    Settings (PostgreSQL, Redis, Bot API URL, pool size, secret key) come from
    the same ``TENANTRY_*`` variables the runtime reads. With ``dedupe``, an
    outer update middleware dedupes the plain way: it claims the update_id with
    ``SET NX`` and marks it done afterwards, each call awaited.
    """
    import logging

    import uvloop
    from aiohttp import web

    logging.basicConfig(level=logging.WARNING)
    web.run_app(
        aiogram_app(tenant_file, dedupe),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


async def aiogram_app(tenant_file: Path, dedupe: bool) -> Any:
    """Build the baseline aiohttp application (see :func:`serve_aiogram`)."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web
    from redis.asyncio import Redis

    from core import builtin
    from core.config.loader import load_tenant_file
    from core.runtime.contributions import contributions_of
    from core.runtime.lifecycle import Lifecycle
    from core.runtime.plugins import CORE_PLUGIN, build_plugin_manager
    from core.runtime.settings import RuntimeSettings
    from core.runtime.tenant import Tenant as CoreTenant
    from core.storage.db import TenantDB, create_pool
    from core.storage.migrations import apply_migrations, load_migrations
    from core.updates.bots import pin_response_models
    from core.updates.dedupe import DEDUPE_TTL_SECONDS, IN_PROGRESS_TTL_SECONDS

    # Give the baseline the same fix for aiogram's Response[T] model churn that the
    # runtime applies, so the comparison measures the frameworks, not that fix.
    pin_response_models()
    settings = RuntimeSettings.from_env()
    pm = build_plugin_manager()
    spec = load_tenant_file(tenant_file, pm)
    config = spec.config
    pool = await create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    async with pool.acquire() as conn:
        await apply_migrations(
            conn, config.schema, load_migrations(CORE_PLUGIN, builtin.register_migrations())
        )
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    # The handler reads tenant.db, tenant.text() and tenant.config: give it the core's own object.
    tenant = CoreTenant(
        config=config,
        features=spec.features,
        settings=spec.settings,
        statuses=spec.machines,
        texts=spec.texts,
        hook=contributions_of(pm).hooks_for(spec.features),
        contributions=contributions_of(pm),
        lifecycle=Lifecycle(),
        # The tenant file's cap, as the runtime applies it (TENANT_MAX_CONNECTIONS).
        db=TenantDB(pool, config.schema, max_connections=config.storage.max_connections),
        redis=redis,
        jobs=None,
        source_hash=spec.source_hash,
    )
    bot = Bot(
        config.bot.token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(settings.bot_api_url.rstrip("/"))),
    )
    storage = RedisStorage(
        redis, key_builder=DefaultKeyBuilder(prefix=f"{config.redis_prefix}fsm", with_bot_id=True)
    )
    dispatcher = Dispatcher(storage=storage)
    dispatcher.include_router(builtin.register_routers(tenant))
    tenant.bot, tenant.dispatcher = bot, dispatcher

    async def dedupe_update(handler: Any, update: Any, data: dict[str, Any]) -> Any:
        seen_key = tenant.key("updates", config.bot.bot_id, update.update_id)
        if not await redis.set(seen_key, "processing", nx=True, ex=IN_PROGRESS_TTL_SECONDS):
            return None
        try:
            return await handler(update, data)
        finally:
            await redis.set(seen_key, "done", ex=DEDUPE_TTL_SECONDS)

    if dedupe:
        dispatcher.update.outer_middleware(dedupe_update)

    app = web.Application()
    SimpleRequestHandler(
        dispatcher,
        bot,
        handle_in_background=False,
        secret_token=webhook_secret(settings.resolved_secret_key(), config.id),
        tenant=tenant,
    ).register(app, path="/webhook/{tenant_id}")
    setup_application(app, dispatcher, bot=bot)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def close_pool(app: web.Application) -> None:
        await pool.close()

    app.router.add_get("/health", health)
    app.on_cleanup.append(close_pool)
    return app
