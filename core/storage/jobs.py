"""Background jobs on saq: plugin job functions, one-off schedules and cron, across runtimes.

All runtimes that share a Redis and a queue name share one saq queue. A job
is stored in Redis, so a scheduled job survives a restart, and saq hands each
job to exactly one worker. Cron schedules are driven by one core cron job that
fires every minute (saq's own cron de-duplicates it across runtimes) and queues
each due plugin job once per tenant with a key naming the minute, so two
runtimes never run the same tick twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from croniter import croniter
from saq import CronJob, Queue, Worker
from saq.queue.redis import RedisQueue

from core.errors import STORAGE_UNAVAILABLE

if TYPE_CHECKING:
    from core.runtime.tenant import Tenant

__all__ = ["JobRunner", "JobSpec"]

log = structlog.get_logger("tenantry.jobs")

DEQUEUE_RETRY_SECONDS = 1.0
"""Pause of a worker slot after a dequeue failed because Redis is unreachable."""


class _PacedRedisQueue(RedisQueue):
    """saq's Redis queue, whose ``dequeue`` pauses before it re-raises a connection error.

    saq's ``Worker.process`` swallows a failed dequeue and the worker starts
    the next one from its done callback at once: with Redis down every worker
    slot was a busy loop of refused connects (about 4000 a second, most of a
    CPU, starving the webhook answers; tests/test_failover_storage.py). The
    pause bounds that to one attempt per slot per second; the worker goes on
    dequeuing within a second of Redis being back.
    """

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Any:
        try:
            return await super().dequeue(timeout, poll_interval)
        except STORAGE_UNAVAILABLE:
            await asyncio.sleep(DEQUEUE_RETRY_SECONDS)
            raise


class JobSpec(msgspec.Struct, frozen=True):
    """A job a plugin provides.

    Attributes:
        name: unique, prefixed with the plugin (``booking.remind``).
        function: ``async fn(tenant, **kwargs)``; kwargs are JSON-ready values.
        cron: five-field cron expression in UTC (``*/5 * * * *``) to run it for
            every tenant that enables the plugin; None for one-off jobs only.
        timeout: seconds before the run is cancelled.
        retries: attempts in all, for one that raises.
    """

    name: str
    function: Callable[..., Awaitable[Any]]
    cron: str | None = None
    timeout: int = 60
    retries: int = 1


class JobRunner:
    """The runtime's saq queue and worker.

    Args:
        redis_url: Redis URL (``redis://`` or ``unix://``).
        queue_name: shared by cooperating runtimes.
        tenants: callable returning the running tenants by id.
        specs: job name -> (plugin, JobSpec).
        concurrency: jobs run at once by this worker.
    """

    def __init__(
        self,
        redis_url: str,
        queue_name: str,
        tenants: Callable[[], Mapping[str, Tenant]],
        specs: Mapping[str, tuple[str, JobSpec]],
        concurrency: int = 10,
    ):
        from redis.asyncio import Redis

        # saq's from_url only knows redis:// URLs; the embedded Redis is a unix socket.
        self.queue: Queue = _PacedRedisQueue(Redis.from_url(redis_url), name=queue_name)
        self._tenants = tenants
        self.specs = dict(specs)
        self.worker = Worker(
            self.queue,
            functions=[("tenant_job", self._run)],
            cron_jobs=[CronJob(self._tick, cron="* * * * *", timeout=55)],
            concurrency=concurrency,
        )
        # saq's Worker.start() would take over SIGINT/SIGTERM on the event loop;
        # in a runtime the server (uvicorn) owns signals and stops us in its lifespan.
        self.worker.SIGNALS = []

    async def enqueue(
        self,
        tenant_id: str,
        job: str,
        *,
        at: datetime | None,
        key: str | None,
        kwargs: dict[str, Any],
    ) -> bool:
        """Queue ``job`` for ``tenant_id``; see :meth:`core.runtime.tenant.Tenant.enqueue`.

        Raises:
            KeyError: no plugin provides ``job``.
        """
        _, spec = self.specs[job]
        options: dict[str, Any] = {"timeout": spec.timeout, "retries": spec.retries}
        if at is not None:
            options["scheduled"] = int(at.timestamp())
        if key is not None:
            options["key"] = f"{tenant_id}:{key}"
        queued = await self.queue.enqueue(
            "tenant_job", kwargs={"tenant_id": tenant_id, "job": job, "args": kwargs}, **options
        )
        return queued is not None

    async def _run(
        self, ctx: dict[str, Any], *, tenant_id: str, job: str, args: dict[str, Any]
    ) -> None:
        tenant = self._tenants().get(tenant_id)
        entry = self.specs.get(job)
        if tenant is None or entry is None or entry[0] not in tenant.features:
            log.warning(
                "job_skipped", tenant=tenant_id, job=job, reason="tenant or plugin not running here"
            )
            return
        structlog.contextvars.bind_contextvars(tenant=tenant_id, job=job)
        try:
            await entry[1].function(tenant, **args)
        finally:
            structlog.contextvars.unbind_contextvars("tenant", "job")

    async def _tick(self, ctx: dict[str, Any]) -> None:
        await self.tick(datetime.now(UTC))

    async def tick(self, now: datetime) -> None:
        """Queue every cron job due in the minute of ``now`` (UTC), for every tenant here.

        Every runtime's worker may fire the same minute's tick: each job is
        queued with the key ``<tenant>:cron:<job>:<YYYYMMDDTHHMM>``, and saq
        keeps one job per key, so it runs once across runtimes.
        """
        minute = now.astimezone(UTC).replace(second=0, microsecond=0)
        for tenant in list(self._tenants().values()):
            for name, (plugin, spec) in self.specs.items():
                if spec.cron and plugin in tenant.features and croniter.match(spec.cron, minute):
                    await self.enqueue(
                        tenant.id, name, at=None, key=f"cron:{name}:{minute:%Y%m%dT%H%M}", kwargs={}
                    )

    async def start(self) -> None:
        """Connect the queue and start the worker in the background."""
        await self.queue.connect()
        self._task = asyncio.create_task(self.worker.start(), name="tenantry-jobs")

    async def stop(self) -> None:
        """Stop the worker (running jobs get their grace period) and disconnect."""
        await self.worker.stop()
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.queue.disconnect()
