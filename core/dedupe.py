"""Webhook update dedupe: each update_id is processed once per bot, across runtimes.

A delivery claims ``<prefix>updates:<bot id>:<update_id>`` with ``SET NX`` as
``processing`` for :data:`IN_PROGRESS_TTL_SECONDS`. After processing, the key
becomes ``done`` for :data:`DEDUPE_TTL_SECONDS`. The ``done`` writes are
batched into one pipeline every few milliseconds (they are off the request's
critical path; until one lands, a re-delivery to another runtime sees
``processing`` and gets 503, so Telegram tries again). If a runtime dies while
processing, the claim expires and Telegram's re-delivery is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum
from typing import TYPE_CHECKING

import structlog

from core.errors import STORAGE_UNAVAILABLE

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.tenant import Tenant

__all__ = ["DEDUPE_TTL_SECONDS", "IN_PROGRESS_TTL_SECONDS", "Claim", "UpdateLedger"]

log = structlog.get_logger("tenantry.dedupe")

# Telegram re-sends an update until it gets a 2xx; a day covers its retry window.
DEDUPE_TTL_SECONDS = 24 * 3600
# A claim of a runtime that died mid-update expires after this long.
IN_PROGRESS_TTL_SECONDS = 120


class Claim(Enum):
    """Outcome of :meth:`UpdateLedger.claim`."""

    CLAIMED = "claimed"  # process it now
    DONE = "done"  # processed before: acknowledge, do nothing
    IN_PROGRESS = "in_progress"  # another delivery is processing it: 503


class UpdateLedger:
    """Claims and completes update ids in Redis for all tenants of a runtime.

    Args:
        redis: the shared Redis client.
        flush_interval: seconds between batched ``done`` writes.
    """

    def __init__(self, redis: Redis, flush_interval: float = 0.01):
        self.redis = redis
        self.flush_interval = flush_interval
        self._pending: set[str] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def key(tenant: Tenant, update_id: int) -> str:
        """The Redis key of ``update_id`` for the tenant's current bot."""
        return tenant.key("updates", tenant.config.bot.bot_id, update_id)

    async def claim(self, key: str, *, prefetch: str | None = None) -> tuple[Claim, str | None]:
        """Try to take ``key`` for processing, reading ``prefetch`` in the same round trip.

        Args:
            key: from :meth:`key`.
            prefetch: another Redis key to read along (the update's FSM state
                key), so processing does not need a round trip of its own.

        Returns:
            The claim outcome and the value of ``prefetch`` (None when not asked
            or not set).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        if prefetch is None:
            claimed = await self.redis.set(key, "processing", nx=True, ex=IN_PROGRESS_TTL_SECONDS)
            value = None
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(key, "processing", nx=True, ex=IN_PROGRESS_TTL_SECONDS)
                pipe.get(prefetch)
                claimed, value = await pipe.execute()
        if claimed:
            return Claim.CLAIMED, value
        if key in self._pending or await self.redis.get(key) == "done":
            return Claim.DONE, None
        return Claim.IN_PROGRESS, None

    def done(self, key: str) -> None:
        """Record that ``key`` was processed; written with the next batch."""
        self._pending.add(key)
        self._wakeup.set()

    async def release(self, key: str) -> None:
        """Give up a claim (processing could not happen), so a re-delivery is processed."""
        with contextlib.suppress(*STORAGE_UNAVAILABLE):
            await self.redis.delete(key)

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="tenantry-update-ledger")

    async def stop(self) -> None:
        """Stop the writer after a last flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        self._wakeup.clear()
        if not self._pending:
            return
        batch = list(self._pending)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.set(key, "done", ex=DEDUPE_TTL_SECONDS)
                await pipe.execute()
        except STORAGE_UNAVAILABLE as exc:
            # The claims expire on their own; a re-delivery is then processed again.
            log.warning("dedupe_flush_failed", keys=len(batch), error=str(exc))
        finally:
            self._pending.difference_update(batch)
