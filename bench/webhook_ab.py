"""A/B of two Tenantry runtimes that differ only in their environment, side by side.

For changes too small for ``bench/webhook.py`` to show above the machine's
noise. Two runtimes (``python -m core.cli run``, one generated tenant each)
serve ``/start`` updates through ``POST /webhook/{id}`` against the same
PostgreSQL, Redis and Bot API stand-in, taking turns for ``--rounds`` rounds
of ``--updates`` updates (A then B, then B then A, ...). Reported: each
side's median rate and server CPU per update, and the median of the per-round
ratios B/A, which cancels the drift of a shared machine (two identical sides
give ratios within about 2 % of 1.0). ``--aiogram`` adds the plain aiogram
server of ``bench/webhook.py`` as a third side.

The two sides differ by environment variables, ``TENANTRY_*`` settings
included (``--a TENANTRY_GC_FREEZE=0 --b TENANTRY_GC_FREEZE=1``), or by any
variable a trial branch of the code reads, and by their code: ``--a-code``
/ ``--b-code`` run the ``core`` package of another checkout, such as a ``git
worktree`` of an older commit (``git worktree add /tmp/wt-1f02a7f 1f02a7f``),
which bisects a slowdown with paired ratios instead of runs on different
minutes of a shared machine.

Usage::

    .venv/bin/python bench/webhook_ab.py --a TENANTRY_GC_FREEZE=0 --b TENANTRY_GC_FREEZE=1
    .venv/bin/python bench/webhook_ab.py --a-code /tmp/wt-1f02a7f --aiogram

PostgreSQL and Redis as in ``bench/webhook.py`` (``TENANTRY_BENCH_*_URL``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import webhook as wb
from _common import format_table, median, wait_http


def parse_env(text: str) -> dict[str, str]:
    """``"A=1,B=x"`` -> ``{"A": "1", "B": "x"}``.

    Raises:
        argparse.ArgumentTypeError: an item without ``=``.
    """
    env = {}
    for item in filter(None, text.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
        env[name.strip()] = value
    return env


async def ab(args: argparse.Namespace) -> int:
    """Run the rounds and print the report; return the exit status."""
    ctx = wb.BenchContext(
        database_url=os.environ.get("TENANTRY_BENCH_DATABASE_URL", wb.DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("TENANTRY_BENCH_REDIS_URL", wb.DEFAULT_REDIS_URL),
        work_dir=Path(tempfile.mkdtemp(prefix="tenantry-bench-ab-")),
    )
    targets: list[wb.Target] = []
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await wb.start_bot_api(ctx, session)
            for side, env, code in (("A", args.a, args.a_code), ("B", args.b, args.b_code)):
                folder = ctx.work_dir / f"side-{side}"
                [tenant] = ctx.write_tenants(folder, 1, side.lower())
                # A control schema per side: checkouts of different commits may carry
                # different control migrations.
                control = f"{ctx.control_schema}_{side.lower()}"
                ctx.schemas.add(control)
                side_env = {"TENANTRY_CONTROL_SCHEMA": control, **env}
                child, url = wb.start_runtime(ctx, folder, f"side-{side}", side_env, code)
                label = f"{side} " + (",".join(f"{k}={v}" for k, v in env.items()) or "(as is)")
                if code is not None:
                    label += f" code {code}"
                targets.append(wb.Target(label, child, url, tenant))
            if args.aiogram:
                child, url, tenant = wb.start_baseline(ctx, dedupe=False)
                targets.append(wb.Target(wb.AIOGRAM, child, url, tenant))
            try:
                for target in targets:
                    await wait_http(session, f"{target.base_url}/health", target.child, 120)
                    await wb.load_run(ctx, session, target, wb.WARMUP_UPDATES, args.concurrency)
                for round_number in range(args.rounds):
                    order = targets if round_number % 2 == 0 else targets[::-1]
                    for target in order:
                        rate, cpu_ms = await wb.load_run(
                            ctx, session, target, args.updates, args.concurrency
                        )
                        target.rates.append(rate)
                        target.cpu_ms.append(cpu_ms)
            finally:
                for target in targets:
                    await target.child.stop(30)
    finally:
        if ctx.bot_api is not None:
            await ctx.bot_api.stop(5)
        await wb.drop_schemas(ctx.database_url, ctx.schemas)
        await wb.delete_redis_keys(ctx.redis_url, ctx.redis_patterns)
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
    first = targets[0]
    rows = [
        (
            target.label,
            median(target.rates),
            median(target.cpu_ms) * 1000,
            median(b / a for a, b in zip(first.rates, target.rates, strict=True)),
            median(b / a for a, b in zip(first.cpu_ms, target.cpu_ms, strict=True)),
        )
        for target in targets
    ]
    print(
        f"{args.rounds} rounds of {args.updates} /start updates, {args.concurrency} in flight, "
        "alternating order"
    )
    print(
        format_table(
            ["side", "median/s", "CPU us/update", "rate vs A", "CPU vs A"],
            rows,
        )
    )
    print("rate / CPU vs A: median of the per-round ratios to side A")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=parse_env, default={}, help="NAME=VALUE,... of side A")
    parser.add_argument("--b", type=parse_env, default={}, help="NAME=VALUE,... of side B")
    parser.add_argument(
        "--a-code", type=Path, help="checkout whose core side A runs (default this one)"
    )
    parser.add_argument(
        "--b-code", type=Path, help="checkout whose core side B runs (default this one)"
    )
    parser.add_argument("--rounds", type=int, default=12, help="rounds (default 12)")
    parser.add_argument("--updates", type=int, default=1000, help="updates per run (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="in flight (default 16)")
    parser.add_argument("--aiogram", action="store_true", help="add plain aiogram as a third side")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    import uvloop

    return uvloop.run(ab(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
