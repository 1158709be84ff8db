"""Durable domain events: throughput across two runtimes, and what the outbox adds to an API create.

Two parts in one run, every runtime a process of its own (``bench/_events_runner.py``:
``tenantry run`` with the ``eventsbench`` plugin of ``bench/_events_plugin.py``
registered as the tests register theirs), sharing PostgreSQL, Redis,
``TENANTRY_QUEUE`` and ``TENANTRY_CONTROL_SCHEMA`` (both per run), next to a
Bot API stand-in process. This process is the load generator (uvloop, aiohttp).

1. **Across runtimes.** Runtime A (``TENANTRY_RUN_EVENTS=0``: it publishes and
   relays, it does not consume) and runtime B (it consumes, and relays too, as
   every runtime does) serve the same ``--tenants`` tenants. ``--events``
   creates go to A's ``POST .../eventsbench/items/published`` (``--concurrency``
   in flight, closed loop, spread over the tenants), each inserting a row and
   publishing ``eventsbench.created`` in one transaction. B's ``on_event``
   records ``time.time()`` and ``event.occurred_at`` of each event in Redis.
   Events per second count from the first event's ``occurred_at`` to the last
   one handled on B; the latency of each event is ``handled - occurred_at``,
   split at the moment the relay ``XADD``-ed it (the stream entry id's
   milliseconds).
2. **Added latency.** On runtime B (consuming and relaying), a tenant that only
   B serves receives the same create with and without
   ``tenant.publish(..., conn=conn)`` (``.../items/published`` and
   ``.../items/unpublished``), sent open-loop at ``--rate`` per second (a
   request's latency counts from its scheduled moment) in ``--rounds`` runs of
   ``--requests`` per route, the routes taking turns (ABBA order). After a
   published run the bench waits until B handled its events, so the relay and
   the consumers run in B during the published runs and never during the
   unpublished ones; B's CPU per create covers that background work. Each
   route also times its own transaction (connection, statements, commit:
   ``tx``) and its commit, which tells PostgreSQL's share of the difference
   from the rest.

Usage::

    .venv/bin/python bench/events.py

PostgreSQL and Redis come from ``TENANTRY_BENCH_DATABASE_URL`` and
``TENANTRY_BENCH_REDIS_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``
and ``redis://127.0.0.1:6379/1``). The schemas and Redis keys of the run are
removed at the end.

The run's tenants and runtime processes are ``bench/_events_setup.py``'s,
the two parts and their report ``bench/_events_parts.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    Child,
    child_env,
    delete_redis_keys,
    drop_schemas,
    free_port,
    wait_http,
)
from _events_parts import added_latency, report, throughput
from _events_setup import Bench, Runtime

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
LOG_PROBLEMS = ('"level": "error"', '"level": "warning"', "traceback")
# saq's warning about its own idle dequeue loops, at every shutdown (docs/benchmarks.md#webhook).
SAQ_SHUTDOWN = "did not finish within the shutdown grace period"


# ---------------------------------------------------------------- main


async def bench_main(args: argparse.Namespace) -> int:
    """Run both parts, print the report, clean up."""
    from redis.asyncio import Redis

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    work_dir = Path(tempfile.mkdtemp(prefix="tenantry-events-bench-"))
    bench = Bench(
        os.environ.get("TENANTRY_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        os.environ.get("TENANTRY_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        work_dir,
    )
    bot_id = 800_000_000 + secrets.randbelow(10**8)
    shared = [bench.tenant(f"p1_{n}", bot_id + n) for n in range(args.tenants)]
    own = bench.tenant("p2", bot_id + args.tenants)
    children: list[Child] = []
    runtimes: list[Runtime] = []
    redis = Redis.from_url(bench.redis_url, decode_responses=True)
    result: list[str] = []
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256), timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            port = free_port()
            bot_api = Child(
                "bot-api stand-in",
                [PYTHON, "-m", "core.testing.botapi", "--port", str(port)],
                child_env(),
                work_dir / "botapi.log",
            )
            children.append(bot_api)
            bench.bot_api_url = f"http://127.0.0.1:{port}"
            await wait_http(session, f"{bench.bot_api_url}/_calls?method=none", bot_api, 60)
            a = bench.runtime("A", bench.write_tenants(work_dir / "a", shared), consume=False)
            b = bench.runtime(
                "B", bench.write_tenants(work_dir / "b", [*shared, own]), consume=True
            )
            runtimes += [a, b]
            children += [a.child, b.child]
            ready = [
                await a.ready(session, len(shared), 120),
                await b.ready(session, len(shared) + 1, 120),
            ]
            print(f"runtimes ready after {ready[0]:.1f} s (A) and {ready[1]:.1f} s (B)", flush=True)
            one = await throughput(bench, session, redis, a, b, shared, args)
            print(f"  part 1: {one.event_rate:.1f} events/s", flush=True)
            published, unpublished = await added_latency(bench, session, redis, b, own, args)
            result = report(args, one, published, unpublished)
            if args.keep_logs:
                (work_dir / "part1-events.json").write_text(json.dumps(one.raw))
    finally:
        for child in reversed(children):
            await child.stop(30)
        await redis.aclose()
        problems = [
            f"{runtime.name}: {line[:300]}"
            for runtime in runtimes
            for line in runtime.child.log_lines(*LOG_PROBLEMS)
            if SAQ_SHUTDOWN not in line
        ]
        dropped = await drop_schemas(bench.database_url, [*bench.schemas, bench.control_schema])
        deleted = await delete_redis_keys(bench.redis_url, bench.redis_patterns)
        print(f"cleanup: dropped {dropped} schemas, deleted {deleted} Redis keys")
        if args.keep_logs:
            print(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print("\n" + "\n".join(result))
    print(
        f"load average (1 min) of the machine: {load_before:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end, {os.cpu_count()} CPUs"
    )
    print(
        f"\nwarnings and errors in the runtimes' logs (saq's shutdown notice aside): {len(problems)}"
    )
    for line in problems[:10]:
        print("  " + line)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="part 1 events (default 3000)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="part 1 creates in flight (default 16)"
    )
    parser.add_argument(
        "--tenants", type=int, default=4, help="part 1 tenants on both runtimes (default 4)"
    )
    parser.add_argument(
        "--rate", type=float, default=50, help="part 2 creates per second (default 50)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=150,
        help="part 2 requests per route per round (default 150)",
    )
    parser.add_argument("--rounds", type=int, default=6, help="part 2 rounds (default 6)")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the child processes' logs and tenant files"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    import uvloop

    return uvloop.run(bench_main(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
