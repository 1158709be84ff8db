"""Webhook throughput against plain aiogram, and the runtime's cost per tenant.

Two parts in one run. Every server runs in its own process on 127.0.0.1, all
against the same PostgreSQL, Redis and Bot API stand-in (``core.testing.botapi``
with its per-call log lines silenced).

1. **Throughput.** ``/start`` updates per second through Tenantry's
   ``POST /webhook/{id}`` (``python -m core.cli run``: uvicorn, Litestar, the
   runtime lifespan) versus aiogram's own aiohttp webhook server
   (``SimpleRequestHandler`` with ``handle_in_background=False``,
   ``setup_application``, ``web.run_app``) running the same handler: the
   core's ``/start`` router from ``core.builtin``, which upserts the user
   through an asyncpg pool of the same size with the tenant's ``search_path``
   and answers with ``sendMessage``, with the FSM in ``RedisStorage``. Both
   check the secret-token header, answer after processing and run on uvloop
   (uvicorn picks it itself; the baseline is given it). Only Tenantry resolves
   the tenant by id, claims and marks the update_id in Redis (one ``EVALSHA``
   that also reads the FSM state and carries earlier done marks), counts in
   Prometheus and binds the structlog context; the baseline dedupes nothing.
   A third server, the baseline plus a plain Redis dedupe in an outer
   middleware (``SET NX`` before, ``SET`` done after, both awaited), shows what
   deduping the obvious way costs.
   A closed-loop aiohttp client with ``--concurrency`` workers posts
   ``--updates`` real-shaped updates (unique update_id and user) per run. After
   a warm-up the servers take turns in rotating order for ``--rounds`` rounds;
   the median run counts. After each run the stand-in must hold one
   ``sendMessage`` per update. ``--profile`` samples one more run of Tenantry
   and of the baseline with py-spy and prints where the CPU goes.

2. **Scale.** For each count in ``--tenants-scale``: a runtime with that many
   generated webhook tenants (own id, schema, Redis prefix, token); its start
   time (spawn until ``GET /health`` shows every tenant ``running``) and CPU,
   the time until the stand-in saw every ``setWebhook``, its RSS (``VmRSS``)
   once started and after 200 ``/start`` updates spread over the tenants, the
   spread ratio (updates/s spread over up to 1000 warm tenants against updates/s
   to one of them, with the runtime's and, when it runs on this machine,
   PostgreSQL's CPU per update), its shutdown on SIGINT, and ``--restarts``
   more starts on the same files (schemas up to date, bots registered).
   ``--profile-restart`` samples the first restart with py-spy and prints where
   it spends, by core frame, per tenant. The generated schemas are dropped and
   their Redis keys deleted afterwards.

Usage::

    .venv/bin/python bench/webhook.py --updates 2000 --concurrency 16 --tenants-scale 1,100,1000

PostgreSQL and Redis come from ``TENANTRY_BENCH_DATABASE_URL`` and
``TENANTRY_BENCH_REDIS_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``
and ``redis://127.0.0.1:6379/1``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    Child,
    Profile,
    child_env,
    cpu_seconds,
    delete_redis_keys,
    drop_schemas,
    format_table,
    free_port,
    median,
    post_all,
    rss_mb,
    wait_http,
)

from core.testing.updates import UpdateFactory
from core.updates.bots import webhook_secret

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WARMUP_UPDATES = 300
SCALE_UPDATES = 200
# Spread against one tenant: updates per run, and over how many tenants at most.
SPREAD_UPDATES = 1000
SPREAD_TENANTS = 1000
RESTART_PROFILE_RATE = 250  # py-spy samples per second of a restart
PROFILE_RATE = 1000  # py-spy samples per second
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
        [PYTHON, __file__, "--serve-botapi", "--port", str(port)],
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


# ---------------------------------------------------------------- part 1: throughput


@dataclass
class Target:
    """One webhook server under load."""

    label: str
    child: Child
    base_url: str
    tenant: BenchTenant
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    stop_seconds: float | None = None
    profile: Profile | None = None
    profile_cpu_ms: float = 0.0


async def load_run(
    ctx: BenchContext,
    session: aiohttp.ClientSession,
    target: Target,
    updates: int,
    concurrency: int,
) -> tuple[float, float]:
    """Post ``updates`` fresh ``/start`` updates to ``target``.

    Returns:
        Updates per second, and the CPU the server process spent per update (ms).

    Raises:
        RuntimeError: the stand-in did not get one sendMessage per update.
    """
    await clear_bot_api(ctx, session)
    requests = requests_for(target.base_url, ctx.start_bodies([target.tenant], updates))
    cpu_before = cpu_seconds(target.child.pid)
    result = await post_all(session, requests, concurrency)
    cpu_ms = (cpu_seconds(target.child.pid) - cpu_before) / updates * 1000
    for reason, count in result.errors.items():
        target.errors[reason] = target.errors.get(reason, 0) + count
    sent = (await bot_api_calls(ctx, session, "sendMessage")).get(target.tenant.bot_id, 0)
    if sent != updates:
        raise RuntimeError(
            f"{target.label}: {sent} sendMessage calls for {updates} updates; see {target.child.log_path}"
        )
    return result.per_second, cpu_ms


def start_baseline(ctx: BenchContext, dedupe: bool) -> tuple[Child, str, BenchTenant]:
    """Spawn the aiogram baseline (see :func:`serve_aiogram`) with one generated tenant."""
    label = "aiogram-dedupe" if dedupe else "aiogram"
    folder = ctx.work_dir / f"throughput-{label}"
    [tenant] = ctx.write_tenants(folder, 1, "d" if dedupe else "a")
    port = free_port()
    argv = [PYTHON, __file__, "--serve-aiogram", str(folder / f"{tenant.id}.yaml")]
    argv += ["--port", str(port), *(["--dedupe"] if dedupe else [])]
    child = Child(
        label,
        argv,
        ctx.runtime_env(folder, port, f"tenantry-bench-{ctx.tag}-{label}"),
        ctx.work_dir / f"{label}.log",
    )
    return child, f"http://127.0.0.1:{port}", tenant


async def throughput(
    ctx: BenchContext,
    session: aiohttp.ClientSession,
    updates: int,
    concurrency: int,
    rounds: int,
    profile: bool,
) -> tuple[list[Target], int]:
    """Part 1: Tenantry, the aiogram baseline and the baseline with Tenantry's dedupe.

    The servers take turns: each round runs them in a rotated order, so none
    always runs first or last. With ``profile``, one more (unmeasured) run of
    Tenantry and of the plain baseline is sampled by py-spy.

    Returns:
        The targets with their rates, and the rows found in their users tables
        (should equal every update posted: each came from a new user).
    """
    folder = ctx.work_dir / "throughput-tenantry"
    [ours] = ctx.write_tenants(folder, 1, "t")
    runtime, runtime_url = start_runtime(ctx, folder, "tenantry")
    targets = [Target(TENANTRY, runtime, runtime_url, ours)]
    for label, dedupe in ((AIOGRAM, False), (AIOGRAM_DEDUPE, True)):
        child, url, tenant = start_baseline(ctx, dedupe)
        targets.append(Target(label, child, url, tenant))
    try:
        await wait_all_running(session, runtime_url, runtime, 1, timeout=120)
        for target in targets[1:]:
            await wait_http(session, f"{target.base_url}/health", target.child, timeout=120)
        for target in targets:
            await load_run(ctx, session, target, WARMUP_UPDATES, concurrency)
            target.errors.clear()
        for round_number in range(rounds):
            shift = round_number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                rate, cpu_ms = await load_run(ctx, session, target, updates, concurrency)
                target.rates.append(rate)
                target.cpu_ms.append(cpu_ms)
                print(
                    f"  run {round_number + 1}/{rounds}  {target.label:<34} {rate:7.1f} updates/s"
                    f"  {cpu_ms:5.2f} server CPU ms/update",
                    flush=True,
                )
        if profile:
            for target in targets[:2]:
                target.profile = await profile_run(ctx, session, target, updates, concurrency)
        users = await count_users(ctx.database_url, [t.tenant.schema for t in targets])
    finally:
        for target in targets:
            target.stop_seconds = await target.child.stop(
                30, session, probe_url=f"{target.base_url}/health"
            )
    return targets, users


async def profile_run(
    ctx: BenchContext,
    session: aiohttp.ClientSession,
    target: Target,
    updates: int,
    concurrency: int,
) -> Profile:
    """Sample ``target``'s process with py-spy during one extra load run.

    Raises:
        RuntimeError: py-spy is not installed (``pip install py-spy``) or failed.
    """
    py_spy = find_py_spy()
    name = target.label.split()[0].lower()
    output = ctx.work_dir / f"profile-{name}.txt"
    spy = Child(
        f"py-spy {name}",
        [py_spy, "record", "--pid", str(target.child.pid), "--format", "raw", "--nolineno",
         "--rate", str(PROFILE_RATE), "--nonblocking", "--output", str(output)],
        child_env(),
        ctx.work_dir / f"py-spy-{name}.log",
    )  # fmt: skip
    await asyncio.sleep(1.0)  # attaching takes a moment
    _, target.profile_cpu_ms = await load_run(ctx, session, target, updates, concurrency)
    await spy.stop(30)
    return read_profile(output, spy.log_path)


def find_py_spy() -> str:
    """The py-spy executable on PATH or next to this Python.

    Raises:
        RuntimeError: it is not installed.
    """
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return py_spy


def read_profile(output: Path, log_path: Path) -> Profile:
    """Load the raw profile py-spy wrote.

    Raises:
        RuntimeError: there is none (py-spy's log says why).
    """
    if not output.exists():
        raise RuntimeError(f"py-spy wrote no profile; see {log_path}")
    return Profile(output.read_text(encoding="utf-8"))


async def count_users(database_url: str, schemas: Sequence[str]) -> int:
    """Rows in the ``users`` tables of ``schemas``."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return sum(
            [await conn.fetchval(f'SELECT count(*) FROM "{schema}".users') for schema in schemas]
        )
    finally:
        await conn.close()


# ---------------------------------------------------------------- part 2: scale


@dataclass
class ScaleRow:
    """Measurements of one tenant count (None where not reached).

    Attributes:
        tenants: how many tenants the runtime serves.
        start_seconds: first start (schemas created): spawn until every tenant runs.
        start_cpu_seconds: CPU the runtime process used by then.
        registered_seconds: spawn until the stand-in saw every setWebhook.
        rss_started / rss_after: VmRSS in MiB once started and after the updates.
        update_rate: updates per second of the updates spread over the tenants.
        stop_seconds: SIGINT until exit (None: it did not exit and was killed).
        restart_seconds: the median of the later starts on the same files
            (schemas up to date, bots registered: built lazily).
        restart_runs: each later start's seconds.
        compared_runs: each later start's seconds with ``--compare-code``'s tree,
            alternating with this tree's (``restart_runs``).
        rss_restarted: RSS (MB) of the first later start once every tenant runs.
        spread_ratio: updates/s spread over up to 1000 warm tenants divided by
            updates/s to one of them (medians of alternating runs).
        spread: those runs and the CPU each cost (:class:`Spread`).
        restart_profile: where the first later start spent (``--profile-restart``).
        note: what went wrong, if anything.
        log_problems: warning and error lines of the runtime's log.
    """

    tenants: int
    start_seconds: float | None = None
    start_cpu_seconds: float | None = None
    registered_seconds: float | None = None
    rss_started: float | None = None
    rss_after: float | None = None
    update_rate: float | None = None
    stop_seconds: float | None = None
    restart_seconds: float | None = None
    restart_runs: list[float] = field(default_factory=list)
    compared_runs: list[float] = field(default_factory=list)
    rss_restarted: float | None = None
    spread_ratio: float | None = None
    spread: Spread | None = None
    restart_profile: list[str] = field(default_factory=list)
    note: str = ""
    log_problems: list[str] = field(default_factory=list)


async def scale_one(
    ctx: BenchContext,
    session: aiohttp.ClientSession,
    count: int,
    concurrency: int,
    timeout: float,
    *,
    restarts: int = 1,
    spread_rounds: int = 3,
    profile_restart: bool = False,
    compare_code: Path | None = None,
) -> ScaleRow:
    """Start a runtime with ``count`` generated tenants, measure it, restart it ``restarts`` times (part 2).

    With ``compare_code``, each restart is followed by one from that tree's
    ``core`` package (:func:`start_runtime`'s ``code_dir``) on the same files.
    """
    row = ScaleRow(count)
    label = f"s{count}x"
    folder = ctx.work_dir / f"scale-{count}"
    tenants = ctx.write_tenants(folder, count, label)
    # A control schema of its own: its tenant store holds these tenants and no others
    # (the store is shared by every runtime on one control schema).
    control = {"TENANTRY_CONTROL_SCHEMA": f"{ctx.tag}_control_s{count}"}
    ctx.schemas.add(control["TENANTRY_CONTROL_SCHEMA"])
    try:
        await clear_bot_api(ctx, session)
        runtime, base_url = start_runtime(ctx, folder, f"scale-{count}", control)
        try:
            row.start_seconds, _ = await wait_all_running(
                session, base_url, runtime, count, timeout
            )
            row.start_cpu_seconds = cpu_seconds(runtime.pid)
            row.registered_seconds = await wait_registered(ctx, session, runtime, tenants, timeout)
            if row.registered_seconds is None:
                row.note = f"not every webhook registered after {timeout:.0f} s"
            row.rss_started = rss_mb(runtime.pid)
            requests = requests_for(base_url, ctx.start_bodies(tenants, SCALE_UPDATES))
            result = await post_all(session, requests, concurrency)
            row.update_rate = result.per_second
            if result.errors:
                row.note = f"update errors: {result.errors}"
            row.rss_after = rss_mb(runtime.pid)
            if count > 1:
                row.spread = await spread_vs_one(
                    ctx, session, runtime, base_url, tenants[:SPREAD_TENANTS], concurrency,
                    spread_rounds,
                )  # fmt: skip
                row.spread_ratio = row.spread.ratio
        except RuntimeError as exc:
            row.note = str(exc)
            return row
        finally:
            row.stop_seconds = await runtime.stop(120, session, probe_url=f"{base_url}/health")
            if row.stop_seconds is None:
                row.note = "ignored SIGINT (kept serving); killed"
            row.log_problems = runtime.log_lines(*LOG_PROBLEMS)
        trees = [None] if compare_code is None else [None, compare_code]
        plan = [(attempt, tree) for attempt in range(restarts) for tree in trees]
        for attempt, tree in plan:
            name = f"scale-{count}-restart{attempt or ''}{'-compared' if tree else ''}"
            restart, base_url = start_runtime(ctx, folder, name, control, code_dir=tree)
            first = not attempt and tree is None
            spy = start_restart_spy(ctx, restart, name) if profile_restart and first else None
            try:
                seconds, _ = await wait_all_running(session, base_url, restart, count, timeout)
                (row.compared_runs if tree else row.restart_runs).append(seconds)
                if first:
                    row.rss_restarted = rss_mb(restart.pid)
                if spy is not None:
                    await spy[0].stop(30)
                    row.restart_profile = restart_profile_report(spy[1], spy[0].log_path, count)
            except RuntimeError as exc:
                row.note = str(exc)
                break
            finally:
                if spy is not None and spy[0].alive():
                    await spy[0].stop(30)
                await restart.stop(120, session, probe_url=f"{base_url}/health")
                row.log_problems += restart.log_lines(*LOG_PROBLEMS)
        if row.restart_runs:
            row.restart_seconds = median(row.restart_runs)
    finally:
        await drop_schemas(ctx.database_url, [t.schema for t in tenants])
        await delete_redis_keys(ctx.redis_url, [f"{ctx.tag}:{label}*"])
        ctx.schemas.difference_update(t.schema for t in tenants)
    return row


@dataclass
class Spread:
    """Updates to one tenant against updates spread over many, in alternating runs.

    Attributes:
        one / spread: updates/s of each run.
        server_ms: the runtime's CPU per update (ms) in each run, ``one`` then ``spread``.
        postgres_ms: the CPU of this machine's PostgreSQL processes per update (ms),
            or empty when PostgreSQL does not run here.
    """

    one: list[float] = field(default_factory=list)
    spread: list[float] = field(default_factory=list)
    server_ms: dict[str, list[float]] = field(default_factory=lambda: {"one": [], "spread": []})
    postgres_ms: dict[str, list[float]] = field(default_factory=lambda: {"one": [], "spread": []})

    @property
    def ratio(self) -> float:
        """The median spread rate over the median one-tenant rate."""
        return statistics.median(self.spread) / statistics.median(self.one)

    def describe(self) -> str:
        """One line: the runs, and the CPU per update of the runtime and of PostgreSQL."""

        def rates(values: list[float]) -> str:
            return ", ".join(f"{v:.0f}" for v in values)

        def cpu(values: dict[str, list[float]]) -> str:
            return f"{median(values['one']):.2f} vs {median(values['spread']):.2f}"

        line = (
            f"spread {rates(self.spread)} updates/s vs one tenant {rates(self.one)}; "
            f"CPU ms/update one vs spread: runtime {cpu(self.server_ms)}"
        )
        if self.postgres_ms["one"]:
            line += f", PostgreSQL {cpu(self.postgres_ms)}"
        return line


async def spread_vs_one(
    ctx: BenchContext,
    session: aiohttp.ClientSession,
    runtime: Child,
    base_url: str,
    tenants: Sequence[BenchTenant],
    concurrency: int,
    rounds: int = 3,
) -> Spread:
    """Updates/s spread over ``tenants`` against updates/s to the first of them.

    Every tenant gets one update first (its bot built, its pool share warm),
    then one-tenant and spread runs of :data:`SPREAD_UPDATES` alternate
    ``rounds`` times; the medians are compared. Each run also counts the
    CPU the runtime and (when it runs on this machine) PostgreSQL used.
    """
    await post_all(
        session, requests_for(base_url, ctx.start_bodies(tenants, len(tenants))), concurrency
    )
    result = Spread()
    for _ in range(rounds):
        for name, target, rates in (
            ("one", tenants[:1], result.one),
            ("spread", tenants, result.spread),
        ):
            bodies = ctx.start_bodies(target, SPREAD_UPDATES)
            server, postgres = cpu_seconds(runtime.pid), local_cpu_seconds("postgres")
            run = await post_all(session, requests_for(base_url, bodies), concurrency)
            rates.append(run.per_second)
            result.server_ms[name].append((cpu_seconds(runtime.pid) - server) * 1000 / len(bodies))
            if postgres is not None:
                used = (local_cpu_seconds("postgres") or 0.0) - postgres
                result.postgres_ms[name].append(used * 1000 / len(bodies))
    return result


def local_cpu_seconds(command: str) -> float | None:
    """CPU seconds used so far by this machine's processes named ``command*``; None when there are none."""
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if not stat[stat.index("(") + 1 : stat.rindex(")")].startswith(command):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        found = True
    return total if found else None


def start_restart_spy(ctx: BenchContext, runtime: Child, name: str) -> tuple[Child, Path]:
    """py-spy recording ``runtime`` (a restart) from now until stopped; it and its output file.

    Raises:
        RuntimeError: py-spy is not installed.
    """
    output = ctx.work_dir / f"profile-{name}.txt"
    spy = Child(
        f"py-spy {name}",
        [find_py_spy(), "record", "--pid", str(runtime.pid), "--format", "raw", "--nolineno",
         "--rate", str(RESTART_PROFILE_RATE), "--nonblocking", "--output", str(output)],
        child_env(),
        ctx.work_dir / f"py-spy-{name}.log",
    )  # fmt: skip
    return spy, output


def restart_profile_report(output: Path, log_path: Path, tenants: int, top: int = 15) -> list[str]:
    """Where a sampled restart spent: imports, ``Runtime.start``, worker threads, by core frame.

    Samples are py-spy's (idle threads left out), so a frame's share is about
    its CPU. Frames are counted inclusively, once per sample however deep they
    recur, below ``Runtime.start`` on the event loop's thread and below the
    work item in worker threads (where the tenant files are validated).

    Raises:
        RuntimeError: py-spy wrote no profile (its log at ``log_path`` says why).
    """
    if not output.exists():
        raise RuntimeError(f"py-spy wrote no profile; see {log_path}")
    inclusive: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    for line in output.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        if any(frame.startswith("_find_and_load ") for frame in frames):
            spent["imports"] += count
            continue
        names = [frame.partition(" (")[0] for frame in frames]
        if "Runtime.start" in names:
            spent["Runtime.start"] += count
            below = frames[names.index("Runtime.start") + 1 :]
        elif "_WorkItem.run" in names:
            spent["worker threads"] += count
            below = frames[names.index("_WorkItem.run") + 1 :]
        else:
            spent["the rest"] += count
            continue
        for frame in {f for f in below if "(core/" in f}:
            inclusive[frame] += count
    ms = 1000 / RESTART_PROFILE_RATE
    parts = ", ".join(
        f"{what} {spent[what] * ms / 1000:.2f}"
        for what in ("imports", "Runtime.start", "worker threads", "the rest")
    )
    rows = [
        (frame[:90], count * ms, count * ms * 1000 / tenants)
        for frame, count in inclusive.most_common(top)
    ]
    return [
        f"Restart profile, {tenants} tenants (py-spy, {RESTART_PROFILE_RATE}/s), seconds sampled: "
        f"{parts}",
        format_table(["core frame, inclusive", "ms", "us/tenant"], rows),
    ]


async def wait_registered(
    ctx: BenchContext,
    session: aiohttp.ClientSession,
    runtime: Child,
    tenants: Sequence[BenchTenant],
    timeout: float,
) -> float | None:
    """Seconds from ``runtime``'s spawn until the stand-in saw setWebhook for every tenant.

    Returns:
        None when that did not happen within ``timeout`` seconds.
    """
    wanted = {t.bot_id for t in tenants}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted <= (await bot_api_calls(ctx, session, "setWebhook")).keys():
            return time.monotonic() - runtime.spawned_at
        await asyncio.sleep(0.2)
    return None


# ---------------------------------------------------------------- report


def throughput_report(args: argparse.Namespace, targets: list[Target], users: int) -> list[str]:
    """Part 1 as text lines: a row per server, the ratios, what differs, the profile."""
    profiled = sum(1 for t in targets if t.profile is not None)
    expected_users = len(targets) * (WARMUP_UPDATES + args.rounds * args.updates)
    expected_users += profiled * args.updates
    rows = [
        (
            target.label,
            ", ".join(f"{r:.0f}" for r in target.rates),
            median(target.rates),
            args.concurrency / median(target.rates) * 1000,
            median(target.cpu_ms),
            sum(target.errors.values()),
        )
        for target in targets
    ]
    ours, plain, dedupe = (median(t.rates) for t in targets)
    ours_cpu, plain_cpu, dedupe_cpu = (median(t.cpu_ms) for t in targets)
    lines = [
        f"Throughput: /start updates, {args.updates} per run, {args.concurrency} in flight, "
        f"{args.rounds} runs per server in rotating order; the median counts",
        format_table(
            ["server", "runs (updates/s)", "median/s", "latency ms", "CPU ms/update", "errors"],
            rows,
        ),
        f"ratio tenantry/aiogram: {ours / plain:.2f}x (goal >= 1.0x); "
        f"server CPU per update {ours_cpu / plain_cpu:.2f}x aiogram's",
        f"ratio tenantry/(aiogram + plain dedupe): {ours / dedupe:.2f}x; "
        f"server CPU per update {ours_cpu / dedupe_cpu:.2f}x",
        "latency ms: in flight / rate (Little's law); CPU ms/update: user+system time of the "
        "server process alone (the client, stand-in, PostgreSQL and Redis share the 2 cores)",
        "same work: core /start handler, asyncpg pool 2..20 with search_path, RedisStorage FSM, "
        "sendMessage to one stand-in, secret header checked, answered after processing, uvloop",
        "only Tenantry: tenant lookup, Redis dedupe (one EVALSHA per update: claim, FSM read, "
        "earlier done marks; the third server dedupes with SET NX + SET), Prometheus counters, "
        "structlog context, in-flight count, its GC policy (heap frozen after start)",
        f"users rows written: {users} (expected {expected_users}: every update came from a new user)",
    ]
    lines += [f"{t.label}: errors {t.errors}" for t in targets if t.errors]
    if profiled:
        lines += ["", *profile_report([t for t in targets if t.profile is not None])]
    lines += [
        f"{t.label}: ignored SIGINT (kept serving) and was killed"
        for t in targets
        if t.stop_seconds is None
    ]
    return lines


def profile_report(targets: list[Target], top: int = 15) -> list[str]:
    """Where each profiled server spends its CPU, in microseconds per update.

    py-spy's share of samples is scaled by the CPU the process used per update
    in the profiled run. Time in C code counts for the Python frame calling it.
    """
    names = [t.label.split()[0] for t in targets]

    def per_update(target: Target, samples: int) -> float:
        assert target.profile is not None
        return target.profile.share(samples) / 100 * target.profile_cpu_ms * 1000

    packages = {p for t in targets if t.profile for p in t.profile.self_by_package}
    by_package = sorted(
        (
            (package, *(per_update(t, t.profile.self_by_package.get(package, 0)) for t in targets))
            for package in packages
            if all(t.profile for t in targets)
        ),
        key=lambda row: -max(row[1:]),
    )
    ours = targets[0]
    assert ours.profile is not None
    frames = sorted(ours.profile.self_by_frame.items(), key=lambda item: -item[1])
    return [
        "Profile (py-spy, CPU microseconds per update by innermost Python frame)",
        format_table(["package", *(f"{n} us" for n in names)], by_package[:top]),
        "",
        format_table(
            [f"{names[0]}: hottest frames", "us"],
            [(frame[:100], per_update(ours, count)) for frame, count in frames[:top]],
        ),
    ]


def scale_report(rows: list[ScaleRow]) -> list[str]:
    """Part 2 as text lines: a row per tenant count, then notes and log problems."""
    base = next((r for r in rows if r.tenants == 1 and r.rss_started is not None), None)

    def per_tenant(row: ScaleRow, value: str, unit: float) -> float | None:
        mine, first = getattr(row, value), getattr(base, value, None)
        if mine is None or first is None or row.tenants <= 1:
            return None
        return (mine - first) / (row.tenants - 1) * unit

    table = [
        (
            row.tenants,
            row.start_seconds,
            per_tenant(row, "start_seconds", 1000),
            row.start_cpu_seconds,
            row.restart_seconds,
            row.rss_restarted,
            row.registered_seconds,
            row.rss_started,
            per_tenant(row, "rss_started", 1024),
            row.rss_after,
            row.update_rate,
            row.spread_ratio,
            row.stop_seconds,
        )
        for row in rows
    ]
    lines = [
        f"Scale: generated webhook tenants (core plugin only), {SCALE_UPDATES} /start updates "
        "spread over them",
        format_table(
            [
                "tenants",
                "start s",
                "ms/tenant",
                "start CPU s",
                "restart s",
                "restart RSS MB",
                "webhooks set s",
                "RSS MB",
                "KB/tenant",
                f"RSS after {SCALE_UPDATES}",
                "updates/s",
                "spread/one",
                "stop s",
            ],
            table,
        ),
        "start s: spawn until GET /health shows every tenant running (schemas created); "
        "ms/tenant, KB/tenant: added per tenant over the 1-tenant runtime; start CPU s: CPU the "
        "runtime used by then; restart s, restart RSS MB: the same on the later starts (median; "
        "schemas up to date, bots registered, so each is built at its first update); "
        "webhooks set s: spawn until the stand-in saw every setWebhook; RSS: VmRSS once started, "
        f"and after {SCALE_UPDATES} updates; spread/one: updates/s spread over up to "
        f"{SPREAD_TENANTS} warm tenants vs to one of them (goal >= 0.9); stop s: SIGINT until exit",
    ]
    for row in rows:
        if len(row.restart_runs) > 1:
            runs = ", ".join(f"{r:.2f}" for r in row.restart_runs)
            lines.append(f"{row.tenants} tenants: restarts {runs} s (restart s is their median)")
        if row.compared_runs:
            runs = ", ".join(f"{r:.2f}" for r in row.compared_runs)
            lines.append(
                f"{row.tenants} tenants: restarts from --compare-code, alternating with these: "
                f"{runs} s (median {median(row.compared_runs):.2f})"
            )
        if row.spread is not None:
            lines.append(f"{row.tenants} tenants: {row.spread.describe()}")
        if row.restart_profile:
            lines += ["", *row.restart_profile, ""]
        if row.note:
            lines.append(f"{row.tenants} tenants: {row.note}")
        if row.log_problems:
            kinds = Counter(_shorten(_TIMESTAMP.sub("", p)) for p in row.log_problems)
            lines.append(f"{row.tenants} tenants: {len(row.log_problems)} warning/error log lines:")
            lines += [f"    {count} x {line}" for line, count in kinds.most_common(5)]
    return lines


_TIMESTAMP = re.compile(r', "timestamp": "[^"]*"')


def _shorten(line: str, limit: int = 220) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------- main


async def bench(args: argparse.Namespace) -> int:
    """Run both parts and print the report; return the exit status."""
    ctx = BenchContext(
        database_url=os.environ.get("TENANTRY_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("TENANTRY_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        work_dir=Path(tempfile.mkdtemp(prefix="tenantry-bench-webhook-")),
        max_connections=args.tenant_max_connections,
    )
    scales = [int(s) for s in args.tenants_scale.split(",") if s.strip()]
    if args.profile_restart:
        find_py_spy()  # before anything starts: RuntimeError when py-spy is missing
    started = time.monotonic()
    targets: list[Target] = []
    rows: list[ScaleRow] = []
    users = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await start_bot_api(ctx, session)
            print(f"cores: {os.cpu_count()}, tag: {ctx.tag}, logs: {ctx.work_dir}", flush=True)
            if args.rounds:
                print("part 1: throughput", flush=True)
                targets, users = await throughput(
                    ctx, session, args.updates, args.concurrency, args.rounds, args.profile
                )
            for count in scales:
                print(f"part 2: {count} tenants", flush=True)
                rows.append(
                    await scale_one(
                        ctx,
                        session,
                        count,
                        args.concurrency,
                        args.start_timeout,
                        restarts=args.restarts,
                        spread_rounds=args.spread_rounds,
                        profile_restart=args.profile_restart,
                        compare_code=args.compare_code,
                    )
                )
                print(
                    f"  started in {rows[-1].start_seconds} s, RSS {rows[-1].rss_started} MB",
                    flush=True,
                )
    finally:
        if ctx.bot_api is not None:
            await ctx.bot_api.stop(5)
        await drop_schemas(ctx.database_url, ctx.schemas)
        await delete_redis_keys(ctx.redis_url, ctx.redis_patterns)
    if targets:
        print("\n" + "\n".join(throughput_report(args, targets, users)))
    if rows:
        print("\n" + "\n".join(scale_report(rows)))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.keep_logs:
        print(f"logs kept in {ctx.work_dir}")
    else:
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
    return 0


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (the ``--serve-*`` ones start a child role and are hidden)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--updates", type=int, default=2000, help="updates per measured run (default 2000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight (default 16)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=9,
        help="measured runs per server, in rotating order (default 9; 0 skips part 1)",
    )
    parser.add_argument(
        "--tenants-scale",
        default="1,100,1000",
        help="tenant counts for part 2, comma-separated (default 1,100,1000; empty skips it)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=300,
        help="seconds a runtime may take to start all tenants (default 300)",
    )
    parser.add_argument(
        "--tenant-max-connections",
        type=int,
        default=TENANT_MAX_CONNECTIONS,
        help="storage.max_connections of every generated tenant, the baseline's included "
        f"(default {TENANT_MAX_CONNECTIONS}: the pool minus one; 5 is the runtime's default)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after part 1, sample one more run of each server with py-spy and print hot spots",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="starts on the same files after the first, per tenant count (default 1)",
    )
    parser.add_argument(
        "--spread-rounds",
        type=int,
        default=3,
        help="alternating one-tenant and spread runs per tenant count (default 3)",
    )
    parser.add_argument(
        "--compare-code",
        type=Path,
        default=None,
        help="also restart each tenant count from the core package of this tree (say a "
        "'git archive' of an older commit), alternating with this tree's restarts",
    )
    parser.add_argument(
        "--profile-restart",
        action="store_true",
        help="sample the first restart of each tenant count with py-spy and print where it spends",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the child processes' logs and tenant files"
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-botapi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-aiogram", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dedupe", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the benchmark, or a child role when asked for one."""
    args = parse_args(argv)
    if args.serve_botapi:
        serve_botapi(args.port)
        return 0
    if args.serve_aiogram:
        serve_aiogram(args.serve_aiogram, args.port, args.dedupe)
        return 0
    import uvloop

    return uvloop.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
