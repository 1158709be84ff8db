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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    Child,
    child_env,
    cpu_seconds,
    delete_redis_keys,
    drop_schemas,
    format_table,
    free_port,
    wait_http,
)
from _events_load import Create, LoadRun, closed_loop, open_loop, percentile
from _events_plugin import calls_key, handled_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
RUNNER = Path(__file__).resolve().parent / "_events_runner.py"
WARMUP = 200  # part 1 creates before the measured ones
WARMUP_PER_ROUTE = 100  # part 2
# The runtime's default pool size, as bench/webhook.py gives its servers.
POOL_MIN, POOL_MAX = 2, 20
SHARDS = 8  # TENANTRY_EVENTS_SHARDS default
LOG_PROBLEMS = ('"level": "error"', '"level": "warning"', "traceback")
# saq's warning about its own idle dequeue loops, at every shutdown (docs/benchmarks.md#webhook).
SAQ_SHUTDOWN = "did not finish within the shutdown grace period"
PUBLISHED = "with publish (outbox)"
UNPUBLISHED = "without publish"


# ---------------------------------------------------------------- setup


@dataclass
class Tenant:
    """A generated tenant: id (also its schema), Redis prefix and bot id."""

    id: str
    redis_prefix: str
    bot_id: int

    def yaml(self, api_key: str) -> str:
        """The tenant file: a webhook bot, one API key, the eventsbench plugin only."""
        return (
            f"id: {self.id}\n"
            f"name: Events bench {self.id}\n"
            "timezone: UTC\n"
            "locale: en\n"
            "bot:\n"
            f'  token: "{self.bot_id}:bench-{self.id}"\n'
            "  mode: webhook\n"
            "api:\n"
            f'  keys: ["{api_key}"]\n'
            "limits:\n"
            # A limit the bench never reaches keeps the check (one Redis call) in the path.
            '  api_writes: "1000000/minute"\n'
            "storage:\n"
            f"  schema: {self.id}\n"
            f'  redis_prefix: "{self.redis_prefix}"\n'
            "features:\n"
            "  eventsbench: {}\n"
        )


@dataclass
class Bench:
    """What both parts of one run share.

    Attributes:
        database_url / redis_url: the servers under test.
        work_dir: temporary folder of tenant files and child logs.
        tag: random tag in every schema, Redis prefix, tenant id and queue name.
        api_key: the API key of every tenant.
        queue: ``TENANTRY_QUEUE`` of both runtimes (the streams' namespace).
        control_schema: ``TENANTRY_CONTROL_SCHEMA`` of both runtimes.
        schemas: what to drop at the end.
        bot_api_url: the stand-in's base URL, once started.
    """

    database_url: str
    redis_url: str
    work_dir: Path
    tag: str = field(default_factory=lambda: "ev" + secrets.token_hex(3))
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    schemas: set[str] = field(default_factory=set)
    bot_api_url: str = ""

    @property
    def queue(self) -> str:
        """The queue name shared by the runtimes of this run."""
        return f"tenantry-bench-{self.tag}"

    @property
    def control_schema(self) -> str:
        """The control schema shared by the runtimes of this run."""
        return f"{self.tag}_control"

    @property
    def redis_patterns(self) -> list[str]:
        """Every Redis key this run creates: tenants' keys, streams and markers, saq's."""
        return [f"{self.tag}:*", f"{self.queue}:*", f"saq:*{self.queue}*"]

    def tenant(self, label: str, bot_id: int) -> Tenant:
        """A new tenant ``<tag>_<label>`` (its schema is dropped at the end)."""
        tenant = Tenant(
            id=f"{self.tag}_{label}", redis_prefix=f"{self.tag}:{label}:", bot_id=bot_id
        )
        self.schemas.add(tenant.id)
        return tenant

    def write_tenants(self, folder: Path, tenants: Sequence[Tenant]) -> Path:
        """Write the tenant files into ``folder``; return it."""
        folder.mkdir(parents=True, exist_ok=True)
        for tenant in tenants:
            (folder / f"{tenant.id}.yaml").write_text(tenant.yaml(self.api_key), encoding="utf-8")
        return folder

    def runtime(self, name: str, tenants_dir: Path, *, consume: bool) -> Runtime:
        """Spawn a runtime process serving ``tenants_dir``; return it (not yet ready)."""
        port = free_port()
        env = child_env(
            TENANTRY_DATABASE_URL=self.database_url,
            TENANTRY_REDIS_URL=self.redis_url,
            TENANTRY_BOT_API_URL=self.bot_api_url,
            TENANTRY_TENANTS_DIR=str(tenants_dir),
            TENANTRY_DATA_DIR=str(self.work_dir / "data"),
            TENANTRY_SECRET_KEY=self.secret_key,
            TENANTRY_CONTROL_SCHEMA=self.control_schema,
            TENANTRY_QUEUE=self.queue,
            TENANTRY_RUNTIME_NAME=f"{self.tag}-{name}",
            TENANTRY_RUN_EVENTS="1" if consume else "0",
            TENANTRY_WATCH="0",
            TENANTRY_DB_POOL_MIN=str(POOL_MIN),
            TENANTRY_DB_POOL_MAX=str(POOL_MAX),
            # tenantry run's heap policy, spelt out: both routes of part 2 run under it.
            TENANTRY_GC_FREEZE="1",
        )
        argv = [PYTHON, str(RUNNER), "--tenants", str(tenants_dir), "--port", str(port)]
        child = Child(f"runtime {name}", argv, env, self.work_dir / f"runtime-{name}.log")
        return Runtime(name, child, f"http://127.0.0.1:{port}")

    def creates(
        self, base_url: str, route: str, tenants: Sequence[Tenant], run: str, count: int
    ) -> list[Create]:
        """``count`` creates to ``route`` (``published``/``unpublished``), round-robin over tenants."""
        headers = {"Content-Type": "application/json", "X-API-Key": self.api_key}
        return [
            Create(
                f"{base_url}/api/tenants/{tenants[n % len(tenants)].id}/eventsbench/items/{route}",
                json.dumps({"title": f"item {n}", "run": run}).encode(),
                headers,
            )
            for n in range(count)
        ]


@dataclass
class Runtime:
    """A runtime process under test."""

    name: str
    child: Child
    base_url: str

    async def ready(self, session: aiohttp.ClientSession, tenants: int, timeout: float) -> float:
        """Wait until ``GET /health`` shows ``tenants`` tenants running; return seconds since spawn.

        Raises:
            RuntimeError: the process exited, or the tenants did not run within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        states: dict[str, int] = {}
        while time.monotonic() < deadline:
            _, body = await wait_http(
                session, f"{self.base_url}/health", self.child, deadline - time.monotonic()
            )
            states = {}
            for tenant in json.loads(body).get("tenants", []):
                states[tenant["state"]] = states.get(tenant["state"], 0) + 1
            if states.get("running", 0) == tenants:
                return time.monotonic() - self.child.spawned_at
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"{self.child.name}: tenants not running after {timeout:.0f} s: {states}"
        )

    def cpu(self) -> float:
        """CPU seconds the process used so far."""
        return cpu_seconds(self.child.pid)


async def handled(
    redis: Redis, tenants: Sequence[Tenant], run: str
) -> dict[str, tuple[float, float]]:
    """Events of ``run`` handled so far: event id -> (occurred_at, handled_at), epoch seconds."""
    pipe = redis.pipeline(transaction=False)
    for tenant in tenants:
        pipe.hgetall(handled_key(tenant.redis_prefix, run))
    found: dict[str, tuple[float, float]] = {}
    for fields in await pipe.execute():
        for event_id, value in fields.items():
            occurred, at = value.split()
            found[event_id] = (float(occurred), float(at))
    return found


async def calls(redis: Redis, tenants: Sequence[Tenant], run: str) -> int:
    """``on_event`` calls for ``run``'s events, redeliveries included."""
    values = [await redis.get(calls_key(t.redis_prefix, run)) for t in tenants]
    return sum(int(v or 0) for v in values)


async def wait_handled(
    redis: Redis,
    tenants: Sequence[Tenant],
    run: str,
    count: int,
    runtimes: Sequence[Runtime],
    timeout: float,
) -> None:
    """Wait until ``count`` events of ``run`` were handled (polls every 10 ms).

    Raises:
        RuntimeError: a runtime exited, or fewer were handled within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    keys = [handled_key(t.redis_prefix, run) for t in tenants]
    while True:
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.hlen(key)
        done = sum(await pipe.execute())
        if done >= count:
            return
        for runtime in runtimes:
            if not runtime.child.alive():
                raise RuntimeError(f"{runtime.child.name} exited; see {runtime.child.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{run}: {done} of {count} events handled after {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def stream_times(redis: Redis, queue: str, event_ids: set[str]) -> dict[str, float]:
    """When the relay added each of ``event_ids`` to a shard stream (entry id ms, epoch seconds)."""
    found: dict[str, float] = {}
    for shard in range(SHARDS):
        for entry_id, fields in await redis.xrange(f"{queue}:events:{shard}"):
            if fields.get("id") in event_ids:
                found[fields["id"]] = int(entry_id.partition("-")[0]) / 1000
    return found


def check(run: LoadRun, label: str) -> None:
    """Refuse a run with failed requests: its numbers would not mean what they say.

    Raises:
        RuntimeError: some requests failed.
    """
    if run.errors:
        raise RuntimeError(f"{label}: failed requests {run.errors}")


def ms(seconds: float) -> float:
    """Seconds to milliseconds."""
    return seconds * 1000


# ---------------------------------------------------------------- part 1


@dataclass
class Throughput:
    """Part 1's result.

    Attributes:
        events: events handled on B (each once: the hash is keyed by event id).
        commit_rate: creates answered by A per second (the load generator's view).
        event_rate: events per second from the first ``occurred_at`` to the
            last handled on B.
        latency / to_stream / to_handler: seconds per event from ``occurred_at``
            to B's handler, to the relay's ``XADD``, and from there to the handler.
        duplicates: ``on_event`` calls beyond one per event.
        cpu_ms_a / cpu_ms_b: CPU milliseconds each runtime used per event,
            from the first create to the last event handled.
        behind: events not yet handled on B when A answered the last create.
        drain: seconds from that answer to the last event handled.
    """

    events: int
    commit_rate: float
    event_rate: float
    latency: list[float]
    to_stream: list[float]
    to_handler: list[float]
    duplicates: int
    cpu_ms_a: float
    cpu_ms_b: float
    behind: int
    drain: float
    raw: dict[str, list[float]] = field(default_factory=dict)
    """Event id -> [occurred_at, added to the stream, handled on B] (``--keep-logs`` writes it)."""


async def throughput(
    bench: Bench,
    session: aiohttp.ClientSession,
    redis: Redis,
    a: Runtime,
    b: Runtime,
    tenants: Sequence[Tenant],
    args: argparse.Namespace,
) -> Throughput:
    """Part 1: commits through A, handled on B (see the module docstring)."""
    warm = bench.creates(a.base_url, "published", tenants, "warm", WARMUP)
    check(await closed_loop(session, warm, args.concurrency), "part 1 warm-up")
    await wait_handled(redis, tenants, "warm", WARMUP, (a, b), timeout=60)

    creates = bench.creates(a.base_url, "published", tenants, "p1", args.events)
    cpu_a, cpu_b = a.cpu(), b.cpu()
    run = await closed_loop(session, creates, args.concurrency)
    check(run, "part 1")
    await wait_handled(redis, tenants, "p1", args.events, (a, b), timeout=120)
    cpu_a, cpu_b = a.cpu() - cpu_a, b.cpu() - cpu_b
    events = await handled(redis, tenants, "p1")
    added = await stream_times(redis, bench.queue, set(events))
    first = min(occurred for occurred, _ in events.values())
    last = max(at for _, at in events.values())
    return Throughput(
        events=len(events),
        commit_rate=args.events / run.seconds,
        event_rate=len(events) / (last - first),
        latency=[at - occurred for occurred, at in events.values()],
        to_stream=[added[e] - occurred for e, (occurred, _) in events.items() if e in added],
        to_handler=[at - added[e] for e, (_, at) in events.items() if e in added],
        duplicates=await calls(redis, tenants, "p1") - len(events),
        cpu_ms_a=ms(cpu_a) / len(events),
        cpu_ms_b=ms(cpu_b) / len(events),
        behind=sum(1 for _, at in events.values() if at > run.last_answered),
        drain=max(0.0, last - run.last_answered),
        raw={e: [occurred, added.get(e, 0.0), at] for e, (occurred, at) in events.items()},
    )


# ---------------------------------------------------------------- part 2


@dataclass
class Side:
    """One route of part 2 over every round.

    Attributes:
        label / route: shown name, and ``published`` or ``unpublished``.
        latencies: seconds per request, every round.
        round_p50: each round's median, seconds.
        cpu_ms: B's CPU milliseconds per create in each round (for the
            published route until its events were handled).
        drain: seconds from each published run's last answer to its last
            event handled.
        event_latency: seconds from ``occurred_at`` to the handler, published runs.
        transactions: seconds per create spent in its transaction on B
            (connection, statements, commit), as the route measured it.
        commits: the part of each spent committing (and returning the connection).
    """

    label: str
    route: str
    latencies: list[float] = field(default_factory=list)
    round_p50: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    event_latency: list[float] = field(default_factory=list)
    transactions: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)


async def added_latency(
    bench: Bench,
    session: aiohttp.ClientSession,
    redis: Redis,
    b: Runtime,
    tenant: Tenant,
    args: argparse.Namespace,
) -> tuple[Side, Side]:
    """Part 2: the same create with and without publish on B, in ABBA order."""
    published = Side(PUBLISHED, "published")
    unpublished = Side(UNPUBLISHED, "unpublished")
    for side in (unpublished, published):  # warm-up, not counted
        warm = bench.creates(b.base_url, side.route, [tenant], "p2-warm", WARMUP_PER_ROUTE)
        check(await open_loop(session, warm, args.rate), "part 2 warm-up")
    await wait_handled(redis, [tenant], "p2-warm", WARMUP_PER_ROUTE, (b,), timeout=60)
    timings_url = f"{b.base_url}/api/tenants/{tenant.id}/eventsbench/items/timings"

    async def transaction_times() -> dict[str, dict[str, list[float]]]:
        async with session.get(timings_url, headers={"X-API-Key": bench.api_key}) as answer:
            answer.raise_for_status()
            return await answer.json()

    await transaction_times()  # forget the warm-up's
    for number in range(args.rounds):
        order = (unpublished, published) if number % 4 in (0, 3) else (published, unpublished)
        for side in order:
            run_name = f"p2-{number}"
            creates = bench.creates(b.base_url, side.route, [tenant], run_name, args.requests)
            cpu = b.cpu()
            run = await open_loop(session, creates, args.rate)
            check(run, f"part 2 {side.label}")
            if side is published:
                # The background work of these creates counts for them: wait for it.
                await wait_handled(redis, [tenant], run_name, args.requests, (b,), timeout=60)
                events = await handled(redis, [tenant], run_name)
                side.drain.append(max(at for _, at in events.values()) - run.last_answered)
                side.event_latency += [at - occurred for occurred, at in events.values()]
            side.cpu_ms.append(ms(b.cpu() - cpu) / args.requests)
            timings = await transaction_times()
            side.transactions += timings["transaction"][side.route]
            side.commits += timings["commit"][side.route]
            side.latencies += run.latencies
            side.round_p50.append(percentile(run.latencies, 50))
            print(
                f"  round {number + 1}/{args.rounds}  {side.label:<22}"
                f" p50 {ms(percentile(run.latencies, 50)):6.2f} ms"
                f"  p99 {ms(percentile(run.latencies, 99)):6.2f} ms"
                f"  B CPU {side.cpu_ms[-1]:5.2f} ms/create",
                flush=True,
            )
    return published, unpublished


# ---------------------------------------------------------------- report


def report(
    args: argparse.Namespace, one: Throughput, published: Side, unpublished: Side
) -> list[str]:
    """The two tables and the ratios."""
    lines = [
        f"part 1: {one.events} events through runtime A (publishes, relays, does not consume) to "
        f"runtime B (consumes), {args.tenants} tenants, {args.concurrency} creates in flight",
        format_table(
            ["", "per s", "p50 ms", "p99 ms", "max ms"],
            [
                ["commits on A (HTTP creates)", one.commit_rate, None, None, None],
                ["events handled on B", one.event_rate, None, None, None],
                *(
                    [label, None, *(ms(percentile(values, q)) for q in (50, 99, 100))]
                    for label, values in (
                        ("commit -> handler on B", one.latency),
                        ("  commit -> stream (relay)", one.to_stream),
                        ("  stream -> handler (consumer)", one.to_handler),
                    )
                ),
            ],
        ),
        f"CPU per event: A {one.cpu_ms_a:.2f} ms (HTTP, insert, outbox, relay), "
        f"B {one.cpu_ms_b:.2f} ms (its relay racing A's, consumers); "
        f"handled twice: {one.duplicates}",
        f"when A answered the last create, B had {one.behind} events left to handle "
        f"({ms(one.drain):.0f} ms until the last)",
        "",
        f"part 2: the same create with and without publish on runtime B (relaying and consuming), "
        f"open loop at {args.rate:g}/s, {args.rounds} rounds x {args.requests} requests per route",
        format_table(
            [
                "route",
                "requests",
                "p50 ms",
                "p99 ms",
                "mean ms",
                "tx p50 ms",
                "tx p99 ms",
                "commit p50",
                "commit p99",
                "B CPU ms/create",
            ],
            [
                [
                    side.label,
                    len(side.latencies),
                    ms(percentile(side.latencies, 50)),
                    ms(percentile(side.latencies, 99)),
                    ms(statistics.fmean(side.latencies)),
                    ms(percentile(side.transactions, 50)),
                    ms(percentile(side.transactions, 99)),
                    ms(percentile(side.commits, 50)),
                    ms(percentile(side.commits, 99)),
                    statistics.median(side.cpu_ms),
                ]
                for side in (unpublished, published)
            ],
        ),
    ]
    p50 = [percentile(s.latencies, 50) for s in (published, unpublished)]
    p99 = [percentile(s.latencies, 99) for s in (published, unpublished)]
    # Each round's two runs are seconds apart: their ratio shrugs off a
    # shared machine's load drifting between rounds.
    paired = [w / wo for w, wo in zip(published.round_p50, unpublished.round_p50, strict=True)]
    lines += [
        f"with / without: p50 {p50[0] / p50[1]:.2f}x (+{ms(p50[0] - p50[1]):.2f} ms), "
        f"p99 {p99[0] / p99[1]:.2f}x (+{ms(p99[0] - p99[1]):.2f} ms)",
        f"p50 per round, with: {', '.join(f'{ms(v):.2f}' for v in published.round_p50)}; "
        f"without: {', '.join(f'{ms(v):.2f}' for v in unpublished.round_p50)}; "
        f"median of the rounds' ratios {statistics.median(paired):.2f}x",
        f"at {args.rate:g}/s, commit -> handler on B: p50 "
        f"{ms(percentile(published.event_latency, 50)):.2f} ms, p99 "
        f"{ms(percentile(published.event_latency, 99)):.2f} ms; last event handled "
        f"{ms(statistics.median(published.drain)):.1f} ms (median) after the last answer",
    ]
    return lines


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
