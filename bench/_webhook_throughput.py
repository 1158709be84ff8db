"""Part 1 of ``bench/webhook.py``, throughput (its module docstring describes it).

:func:`throughput` starts Tenantry, plain aiogram and aiogram with a plain
Redis dedupe (:mod:`_webhook_servers`), warms them up and lets them take
turns in rotating order for the rounds, each run a :func:`load_run`; with
``--profile``, :func:`profile_run` samples one more run of Tenantry and of
plain aiogram with py-spy. :func:`throughput_report` lays out the table of
runs, the ratios, what differs between the servers and the profile.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _common import (
    Child,
    Profile,
    child_env,
    cpu_seconds,
    format_table,
    median,
    post_all,
    wait_http,
)
from _webhook_servers import (
    AIOGRAM,
    AIOGRAM_DEDUPE,
    TENANTRY,
    BenchContext,
    BenchTenant,
    bot_api_calls,
    clear_bot_api,
    find_py_spy,
    requests_for,
    start_baseline,
    start_runtime,
    wait_all_running,
)

WARMUP_UPDATES = 300
PROFILE_RATE = 1000  # py-spy samples per second


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
