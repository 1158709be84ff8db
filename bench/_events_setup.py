"""The run of ``bench/events.py``: its tenants, its runtime processes, and what they handled.

:class:`Bench` is what both parts of one run share (servers, tag, API key,
queue and control schema); it writes the :class:`Tenant` files and spawns
each :class:`Runtime` (``bench/_events_runner.py``). :func:`handled`,
:func:`calls`, :func:`wait_handled` and :func:`stream_times` read what the
``eventsbench`` plugin and the relay recorded in Redis.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from _common import PYTHON, Child, child_env, cpu_seconds, free_port, wait_http
from _events_load import Create, LoadRun
from _events_plugin import calls_key, handled_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

RUNNER = Path(__file__).resolve().parent / "_events_runner.py"
# The runtime's default pool size, as bench/webhook.py gives its servers.
POOL_MIN, POOL_MAX = 2, 20
SHARDS = 8  # TENANTRY_EVENTS_SHARDS default


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
