"""Part 2 of ``bench/webhook.py``, scale (its module docstring describes it).

:func:`scale_one` measures one tenant count: a runtime with that many
generated tenants, its start, webhook registration and RSS, updates spread
over the tenants, the spread ratio against one tenant (:func:`spread_vs_one`),
its shutdown, then the restarts on the same files, alternating with
``--compare-code``'s tree when given, the first sampled with py-spy under
``--profile-restart`` (:func:`restart_profile_report`). :func:`scale_report`
lays out the table of tenant counts and the notes below it.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _common import (
    Child,
    child_env,
    cpu_seconds,
    delete_redis_keys,
    drop_schemas,
    format_table,
    median,
    post_all,
    rss_mb,
)
from _webhook_servers import (
    LOG_PROBLEMS,
    BenchContext,
    BenchTenant,
    bot_api_calls,
    clear_bot_api,
    find_py_spy,
    requests_for,
    start_runtime,
    wait_all_running,
)

SCALE_UPDATES = 200
# Spread against one tenant: updates per run, and over how many tenants at most.
SPREAD_UPDATES = 1000
SPREAD_TENANTS = 1000
RESTART_PROFILE_RATE = 250  # py-spy samples per second of a restart


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
