"""Realtime: latency from an order create through the API to its frame at WebSocket clients.

Every part runs in a process of its own, on one machine:

* a Bot API stand-in (``python -m core.cli fake-botapi``);
* runtimes A and B (``python -m core.cli run``, as in production: JSON logs,
  the heap policy, uvicorn's default loop), sharing PostgreSQL, Redis,
  ``TENANTRY_QUEUE`` and ``TENANTRY_CONTROL_SCHEMA``, both consuming events,
  serving one marketplace tenant with orders and realtime;
* client processes (``bench/_realtime_clients.py``): for each size in
  ``--clients``, half the clients on A and half on B, each with its own
  ticket and socket, subscribed to ``orders:bakery``; aiohttp's client on
  uvloop by default (the cheapest per frame: the clients share the two cores
  with the runtimes, where browsers would be on machines of their own);
* the load generator (``bench/_realtime_load.py``): ``--orders`` creates sent
  to A's orders API open-loop at ``--rate`` per second.

The latency of a frame is its arrival at a client (``time.time()`` in the
client process) minus the moment its create request was sent (``time.time()``
in the load process): the API call that commits the order, the outbox, the
relay, the realtime consumer (on A or B) appending to the topic stream and
publishing on Redis pub/sub, each runtime's fan-out, and the client reading
the frame. p50 and p99 are over every (order, client) pair; ``missing``
counts frames that never arrived. Memory per connection is the growth of
A's plus B's RSS from before the clients connected to after they all
subscribed, divided by the clients.

Usage::

    .venv/bin/python bench/realtime.py                 # 10, 100, 1000 clients
    .venv/bin/python bench/realtime.py --clients 1000 --orders 100

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
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
    rss_mb,
    wait_http,
)
from _events_load import percentile

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CLIENTS = BENCH_DIR / "_realtime_clients.py"
LOAD = BENCH_DIR / "_realtime_load.py"
RUNTIME = BENCH_DIR / "_realtime_runtime.py"
CLIENTS_PER_PROCESS = 250
WARMUP_ORDERS = 20
TOPIC = "orders:bakery"
PING_SECONDS = 10
"""``features.realtime.ping_seconds`` of the bench tenant: shorter than a stage's load, so
every connection's keep-alive (a ping and a read of its topics' streams) runs while
frames are measured, as it does every 30 s (the default) on long-lived connections."""
# saq's notice about its idle dequeue loops at every shutdown (docs/benchmarks.md#webhook).
SAQ_SHUTDOWN = "did not finish within the shutdown grace period"


@dataclass
class Run:
    """One run's names and places."""

    database_url: str
    redis_url: str
    work_dir: Path
    tag: str

    @property
    def tenant(self) -> str:
        """The tenant id, also its schema."""
        return f"{self.tag}_market"

    @property
    def queue(self) -> str:
        """``TENANTRY_QUEUE`` of both runtimes."""
        return f"tenantry-bench-{self.tag}"

    @property
    def api_key(self) -> str:
        """The tenant's admin API key."""
        return f"bench-{self.tag}-key"

    def tenant_yaml(self) -> str:
        """A marketplace tenant: one bakery with one item, orders and realtime."""
        return f"""\
id: {self.tenant}
name: Realtime bench
timezone: UTC
locale: en
bot:
  token: "{100000 + secrets.randbelow(800000)}:bench-{self.tag}"
  mode: webhook
  admins: [900000001]
api:
  keys: ["{self.api_key}"]
limits:
  api_writes: "1000000/minute"
storage:
  schema: {self.tenant}
  redis_prefix: "{self.tag}:market:"
features:
  orders:
    expire_after_minutes: 0
    max_active_orders_per_customer: 0
    stores:
      - {{id: bakery, name: Bakery, partners: [7001], pickup: true, currency: RUB}}
    categories:
      - {{id: bread, store: bakery, name: Bread}}
    items:
      - {{sku: baguette, store: bakery, category: bread, name: Baguette, price: 12000}}
  realtime: {{ping_seconds: {PING_SECONDS}}}
"""

    def runtime_env(self, name: str, bot_api_url: str) -> dict[str, str]:
        """The environment of runtime ``name``."""
        return child_env(
            TENANTRY_DATABASE_URL=self.database_url,
            TENANTRY_REDIS_URL=self.redis_url,
            TENANTRY_BOT_API_URL=bot_api_url,
            TENANTRY_DATA_DIR=str(self.work_dir / "data"),
            TENANTRY_SECRET_KEY=self.tag * 4,
            TENANTRY_CONTROL_SCHEMA=f"{self.tag}_control",
            TENANTRY_QUEUE=self.queue,
            TENANTRY_RUNTIME_NAME=f"{self.tag}-{name}",
            TENANTRY_WATCH="0",
            PYTHONPATH=str(REPO),
        )


@dataclass
class Result:
    """One size's measurements."""

    clients: int
    frames: int
    missing: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_a_ms: float
    p99_b_ms: float
    api_p50_ms: float
    spread_p50_ms: float
    first_p50_ms: float
    first_p99_ms: float
    runtime_cpu: float
    clients_cpu: float
    kib_per_connection: float
    errors: dict[str, int]


async def _wait_health(session: aiohttp.ClientSession, url: str, child: Child) -> None:
    deadline = time.monotonic() + 120
    while True:
        _, body = await wait_http(session, f"{url}/health", child, deadline - time.monotonic())
        tenants = json.loads(body).get("tenants", [])
        if tenants and all(t["state"] == "running" for t in tenants):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name}: tenant not running: {tenants}")
        await asyncio.sleep(0.1)


async def _wait_files(paths: Sequence[Path], children: Sequence[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for child in children:
            if not child.alive() and child.process.returncode != 0:
                raise RuntimeError(f"{child.name} failed; see {child.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready within {timeout:.0f} s: {[str(p) for p in paths]}")
        await asyncio.sleep(0.05)


async def _wait_until_received(
    procs: Sequence[tuple[str, Child, Path, Path]], timeout: float
) -> None:
    """Until every client process wrote its results (it exits right after)."""
    await _wait_files([p[3] for p in procs], [p[1] for p in procs], timeout)


async def _wait_exit(children: Sequence[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(c.alive() for c in children):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{[c.name for c in children if c.alive()]} still running")
        await asyncio.sleep(0.05)
    for child in children:
        if child.process.returncode != 0:
            raise RuntimeError(f"{child.name} exited {child.process.returncode}; see {child.log_path}")  # fmt: skip


async def measure(
    run: Run, runtimes: dict[str, tuple[Child, str]], clients: int, orders: int, rate: float,
    item_id: int, label: str, profile: bool = False, client_options: Sequence[str] = (),
) -> Result:  # fmt: skip
    """Connect ``clients`` (half per runtime), send ``orders`` creates to A, collect the frames.

    With ``profile``, runtime B is sampled by py-spy while the orders are sent
    and the profile's summary is printed to stderr.
    """
    stage = run.work_dir / label
    stage.mkdir()
    rss_before = sum(rss_mb(child.pid) for child, _ in runtimes.values())
    procs: list[tuple[str, Child, Path, Path]] = []
    for index, (name, (_, url)) in enumerate(runtimes.items()):
        share = clients // 2 + (clients % 2 if index == 0 else 0)
        for part in range(0, share, CLIENTS_PER_PROCESS):
            count = min(CLIENTS_PER_PROCESS, share - part)
            ready, out = stage / f"{name}-{part}.ready", stage / f"{name}-{part}.json"
            argv = [PYTHON, str(CLIENTS), "--url", url, "--tenant", run.tenant, "--key", run.api_key,
                    "--topic", TOPIC, "--count", str(count), "--expect", str(orders),
                    "--ready", str(ready), "--out", str(out), *client_options]  # fmt: skip
            child = Child(f"clients {name}/{part}", argv, child_env(), stage / f"clients-{name}-{part}.log")  # fmt: skip
            procs.append((name, child, ready, out))
    children = [p[1] for p in procs]
    await _wait_files([p[2] for p in procs], children, timeout=120)
    await asyncio.sleep(0.5)  # let the runtimes' allocations after the last subscribe settle
    rss_after = sum(rss_mb(child.pid) for child, _ in runtimes.values())
    cpu_before = sum(cpu_seconds(child.pid) for child, _ in runtimes.values())
    spy = None
    if profile:
        spy_out = stage / "profile-B.txt"
        spy = Child("py-spy B", [_py_spy(), "record", "--pid", str(runtimes["B"][0].pid),
                    "--format", "raw", "--nolineno", "--rate", "500", "--nonblocking",
                    "--output", str(spy_out)], child_env(), stage / "py-spy.log")  # fmt: skip
        await asyncio.sleep(1.0)  # attaching takes a moment
    started = time.monotonic()

    load_out = stage / "load.json"
    load = Child(
        "load",
        [PYTHON, str(LOAD), "--url", runtimes["A"][1], "--tenant", run.tenant, "--key",
         run.api_key, "--item", str(item_id), "--orders", str(orders), "--rate", str(rate),
         "--out", str(load_out)],
        child_env(), stage / "load.log",
    )  # fmt: skip
    await _wait_exit([load], timeout=orders / rate + 60)
    await _wait_until_received(procs, timeout=150)
    wall = time.monotonic() - started
    runtime_cpu = sum(cpu_seconds(child.pid) for child, _ in runtimes.values()) - cpu_before
    if spy is not None:
        await spy.stop(30)
        _print_profile(Profile(spy_out.read_text(encoding="utf-8")))
    await _wait_exit(children, timeout=150)

    sent = json.loads(load_out.read_text())
    sent_at = {order_id: at for order_id, at, _ in sent["orders"]}
    api_ms = [1000 * (answered - at) for _, at, answered in sent["orders"]]
    latencies: dict[str, list[float]] = {name: [] for name in runtimes}
    first_last: dict[int, list[float]] = {}
    missing = 0
    clients_cpu = 0.0
    for name, _, _, out in procs:
        body = json.loads(out.read_text())
        missing += body["missing"]
        clients_cpu += body["cpu"]
        for order_id, at in body["arrivals"]:
            if order_id in sent_at:
                latencies[name].append(1000 * (at - sent_at[order_id]))
                span = first_last.setdefault(order_id, [at, at])
                span[0], span[1] = min(span[0], at), max(span[1], at)
    every = [v for values in latencies.values() for v in values]
    # The pipeline alone (commit, outbox, relay, consumer, pub/sub): each order's first frame.
    firsts = [1000 * (span[0] - sent_at[order_id]) for order_id, span in first_last.items()]
    return Result(
        clients=clients,
        frames=len(every),
        missing=missing,
        p50_ms=percentile(every, 50),
        p99_ms=percentile(every, 99),
        max_ms=max(every, default=float("nan")),
        p99_a_ms=percentile(latencies["A"], 99),
        p99_b_ms=percentile(latencies["B"], 99),
        api_p50_ms=percentile(api_ms, 50),
        spread_p50_ms=percentile([1000 * (b - a) for a, b in first_last.values()], 50),
        first_p50_ms=percentile(firsts, 50),
        first_p99_ms=percentile(firsts, 99),
        runtime_cpu=runtime_cpu / wall,
        clients_cpu=clients_cpu / wall,
        kib_per_connection=(rss_after - rss_before) * 1024 / clients,
        errors=sent["errors"],
    )


async def bench(args: argparse.Namespace) -> list[Result]:
    """Start everything, measure each size, stop and clean up."""
    work_dir = Path(tempfile.mkdtemp(prefix="tenantry-bench-rt-"))
    run = Run(args.database_url, args.redis_url, work_dir, "rt" + secrets.token_hex(3))
    tenants_dir = work_dir / "tenants"
    tenants_dir.mkdir()
    (tenants_dir / f"{run.tenant}.yaml").write_text(run.tenant_yaml(), encoding="utf-8")
    children: list[Child] = []
    results: list[Result] = []
    try:
        async with aiohttp.ClientSession() as session:
            port = free_port()
            bot_api = Child("bot api", [PYTHON, "-m", "core.cli", "fake-botapi", "--port", str(port)],
                            child_env(PYTHONPATH=str(REPO)), work_dir / "botapi.log", cwd=REPO)  # fmt: skip
            children.append(bot_api)
            bot_api_url = f"http://127.0.0.1:{port}"
            await wait_http(session, f"{bot_api_url}/_calls?method=none", bot_api, timeout=60)
            runtimes: dict[str, tuple[Child, str]] = {}
            for name in ("A", "B"):
                port = free_port()
                command = ["-m", "core.cli", "run"] if args.ws is None else [str(RUNTIME), "--ws", args.ws]  # fmt: skip
                argv = [PYTHON, *command, "--tenants", str(tenants_dir),
                        "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
                child = Child(f"runtime {name}", argv, run.runtime_env(name, bot_api_url),
                              work_dir / f"runtime-{name}.log", cwd=REPO)  # fmt: skip
                children.append(child)
                runtimes[name] = (child, f"http://127.0.0.1:{port}")
            for child, url in runtimes.values():
                await _wait_health(session, url, child)
            item_id = await _item_id(run)
            await measure(run, runtimes, 2, WARMUP_ORDERS, args.rate, item_id, "warmup")
            for size in args.clients:
                profile = args.profile and size == max(args.clients)
                client_options = [
                    "--impl",
                    args.client,
                    *(["--uvloop"] if args.client_uvloop else []),
                ]
                result = await measure(run, runtimes, size, args.orders, args.rate, item_id, f"c{size}",
                                       profile, client_options)  # fmt: skip
                results.append(result)
                print(f"{size} clients: p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms",
                      file=sys.stderr, flush=True)  # fmt: skip
            for child in reversed(children):
                await child.stop(timeout=20)
            for child, _ in runtimes.values():  # read once stopped: the log is flushed
                problems = [line for line in child.log_lines('"level": "error"', '"level": "warning"', "traceback")
                            if SAQ_SHUTDOWN not in line]  # fmt: skip
                if problems:
                    print(f"{child.name}: {len(problems)} warning/error lines, e.g. {problems[0][:300]}", file=sys.stderr)  # fmt: skip
    finally:
        for child in children:
            if child.alive():
                await child.stop(timeout=10)
        await drop_schemas(run.database_url, [run.tenant, f"{run.tag}_control"])
        await delete_redis_keys(run.redis_url, [f"{run.tag}:*", f"{run.queue}:*", f"saq:*{run.queue}*"])  # fmt: skip
        if args.keep:
            print(f"logs kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return results


def _py_spy() -> str:
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return py_spy


def _print_profile(profile: Profile, top: int = 15) -> None:
    """Where runtime B's CPU went: self time by package and by frame."""
    print(f"runtime B, {profile.samples} samples; self time by package:", file=sys.stderr)
    for package, samples in sorted(profile.self_by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {profile.share(samples):5.1f}%  {package}", file=sys.stderr)
    print("by frame:", file=sys.stderr)
    for frame, samples in sorted(profile.self_by_frame.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {profile.share(samples):5.1f}%  {frame}", file=sys.stderr)


async def _item_id(run: Run) -> int:
    import asyncpg

    conn = await asyncpg.connect(run.database_url)
    try:
        return int(await conn.fetchval(f'SELECT id FROM "{run.tenant}".items LIMIT 1'))
    finally:
        await conn.close()


def report(results: Sequence[Result], args: argparse.Namespace) -> str:
    """The results table."""
    rows = [
        (r.clients, r.frames, r.missing, r.p50_ms, r.p99_ms, r.max_ms, r.p99_a_ms, r.p99_b_ms,
         r.api_p50_ms, r.first_p50_ms, r.first_p99_ms, r.spread_p50_ms, r.runtime_cpu, r.clients_cpu, r.kib_per_connection,
         sum(r.errors.values()))
        for r in results
    ]  # fmt: skip
    headers = ("clients", "frames", "missing", "p50 ms", "p99 ms", "max ms", "p99 on A",
               "p99 on B", "API p50 ms", "1st p50", "1st p99", "spread p50", "CPU A+B", "CPU clients", "KiB/conn",
               "API errors")  # fmt: skip
    loop = "uvloop" if args.client_uvloop else "asyncio"
    server = f"; runtimes with ws={args.ws}" if args.ws else ""
    head = (f"{args.orders} orders at {args.rate:g}/s to runtime A{server}; clients half on A, half on B "
            f"({args.client} on {loop}); {os.cpu_count()} CPUs; load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")  # fmt: skip
    return head + "\n\n" + format_table(headers, rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10, 100, 1000], help="sizes, comma-separated (default 10,100,1000)")  # fmt: skip
    parser.add_argument("--orders", type=int, default=60, help="creates per size (default 60)")
    parser.add_argument("--rate", type=float, default=5.0, help="creates per second (default 5)")
    parser.add_argument("--database-url", default=os.environ.get("TENANTRY_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))  # fmt: skip
    parser.add_argument("--redis-url", default=os.environ.get("TENANTRY_BENCH_REDIS_URL", DEFAULT_REDIS_URL))  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    parser.add_argument("--profile", action="store_true",
                        help="sample runtime B with py-spy during the largest size")  # fmt: skip
    parser.add_argument("--ws", choices=["websockets-sansio", "websockets", "wsproto"],
                        help="uvicorn's WebSocket implementation for the runtimes (default: tenantry run's)")  # fmt: skip
    # The clients are the load generator: the cheapest per frame (aiohttp's compiled frame
    # reader on uvloop) leaves the most of the two cores to the runtimes, as browsers on
    # machines of their own would.
    parser.add_argument("--client", choices=["websockets", "aiohttp"], default="aiohttp",
                        help="the clients' WebSocket library (default aiohttp)")  # fmt: skip
    parser.add_argument("--client-uvloop", dest="client_uvloop", action="store_true", default=True,
                        help="run the client processes on uvloop (the default)")  # fmt: skip
    parser.add_argument("--client-asyncio", dest="client_uvloop", action="store_false",
                        help="run the client processes on asyncio's own loop")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    results = asyncio.run(bench(args))
    print(report(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
