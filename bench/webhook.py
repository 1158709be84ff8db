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

This script parses the options and runs the parts in order; they live in
private modules next to it: ``_webhook_servers`` (the servers compared and
their spawning, the Bot API stand-in, the hidden ``--serve-*`` child roles),
``_webhook_throughput`` (part 1) and ``_webhook_scale`` (part 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import delete_redis_keys, drop_schemas
from _webhook_scale import ScaleRow, scale_one, scale_report
from _webhook_servers import (
    AIOGRAM,
    LOG_PROBLEMS,
    SECRET_HEADER,
    TENANT_MAX_CONNECTIONS,
    BenchContext,
    BenchTenant,
    clear_bot_api,
    find_py_spy,
    serve_aiogram,
    serve_botapi,
    start_baseline,
    start_bot_api,
    start_runtime,
    wait_all_running,
)
from _webhook_throughput import WARMUP_UPDATES, Target, load_run, throughput, throughput_report

# What bench/hotadd.py and bench/webhook_ab.py import from here, besides main.
__all__ = [
    "AIOGRAM",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_REDIS_URL",
    "LOG_PROBLEMS",
    "SECRET_HEADER",
    "WARMUP_UPDATES",
    "BenchContext",
    "BenchTenant",
    "Target",
    "clear_bot_api",
    "delete_redis_keys",
    "drop_schemas",
    "load_run",
    "main",
    "start_baseline",
    "start_bot_api",
    "start_runtime",
    "wait_all_running",
]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"


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
