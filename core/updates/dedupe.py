"""Webhook update dedupe: each update_id is processed once per bot, across runtimes.

A delivery claims ``<prefix>updates:<bot id>:<update_id>`` as ``processing``
(``SET NX``) with a lease of :data:`IN_PROGRESS_TTL_SECONDS`, which the
runtime holding it renews every third of that while the update is in hand
(one script call for all its claims). After processing, the key becomes
``done`` for :data:`DEDUPE_TTL_SECONDS`. If a runtime dies while processing
(kill -9), its claims expire within the lease and Telegram's re-delivery is
processed by whichever runtime gets it: at least once across a crash.

Both steps are one Redis round trip per update together, through two Lua
scripts (``EVALSHA``; Redis runs a script atomically):

* the claim script takes the update's key, the FSM state key aiogram is about
  to read (returned in the same reply, so the Dispatcher needs no round trip
  of its own) and the keys of updates this runtime finished since its last
  call, which it marks ``done`` first;
* ``done`` marks of a quiet runtime (no claim for
  :attr:`UpdateLedger.flush_interval` seconds) are written by a background
  task with the second script.

Until its mark lands, a re-delivery of a finished update to another runtime
sees ``processing`` and gets 503, so Telegram tries again; to this runtime it
is a duplicate at once.

On a Redis Cluster a script may only touch keys of one slot. Every key of a
tenant carries its prefix as a hash tag (:mod:`core.runtime.rediscluster`),
so the update key and the FSM state key share a slot; pending marks are kept
per slot, a claim carries only those of its own slot, and a flush writes one
script call per slot. On a plain Redis everything is one group, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum
from typing import TYPE_CHECKING

import structlog

from core.errors import STORAGE_UNAVAILABLE
from core.runtime.rediscluster import is_cluster, slot_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.runtime.tenant import Tenant

__all__ = ["DEDUPE_TTL_SECONDS", "IN_PROGRESS_TTL_SECONDS", "Claim", "UpdateLedger"]

log = structlog.get_logger("tenantry.dedupe")

# Telegram re-sends an update until it gets a 2xx; a day covers its retry window.
DEDUPE_TTL_SECONDS = 24 * 3600
# A claim's lease, seconds: renewed every third of it while its update is in
# hand, so a claim of a runtime that died mid-update expires this long after
# the death, however long a live handler runs.
IN_PROGRESS_TTL_SECONDS = 10
# At most this many done marks ride along with one claim.
MAX_MARKS_PER_CALL = 256

# KEYS[1] the update's key; KEYS[2] the FSM state key to read (ARGV[3] == "1") or
# a placeholder; KEYS[3..] finished updates to mark done.
# ARGV[1] in-progress TTL, ARGV[2] done TTL, ARGV[3] "1" when KEYS[2] is to be read.
# Returns {1, state} when claimed, {0, current value of KEYS[1]} otherwise.
_CLAIM_SCRIPT = """
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], 'done', 'EX', ARGV[2])
end
if redis.call('SET', KEYS[1], 'processing', 'NX', 'EX', ARGV[1]) then
  if ARGV[3] == '1' then
    return {1, redis.call('GET', KEYS[2])}
  end
  return {1, false}
end
return {0, redis.call('GET', KEYS[1])}
"""

# KEYS: finished updates; ARGV[1] done TTL. Returns how many were marked.
_MARK_SCRIPT = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 'done', 'EX', ARGV[1])
end
return #KEYS
"""


# KEYS: claims this runtime holds; ARGV[1] lease (seconds). Renews each one still
# ``processing`` (never a ``done`` mark, whose TTL is a day). Returns how many.
_RENEW_SCRIPT = """
local renewed = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == 'processing' then
    redis.call('EXPIRE', KEYS[i], ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
"""


# Done-mark arguments, encoded once (redis-py passes bytes through as they are).
_MARK_ARGS = (b"%d" % DEDUPE_TTL_SECONDS,)


class Claim(Enum):
    """Outcome of :meth:`UpdateLedger.claim`."""

    CLAIMED = "claimed"  # process it now
    DONE = "done"  # processed before: acknowledge, do nothing
    IN_PROGRESS = "in_progress"  # another delivery is processing it: 503


class UpdateLedger:
    """Claims and completes update ids in Redis for all tenants of a runtime.

    Args:
        redis: the shared Redis client (``decode_responses=True``).
        flush_interval: seconds a ``done`` mark may wait for a claim to carry
            it before the background task writes it.
        lease_seconds: a claim's lease (whole seconds, at least 1), renewed
            every third of it while its update is in hand.
    """

    def __init__(
        self,
        redis: Redis,
        flush_interval: float = 0.01,
        lease_seconds: int = IN_PROGRESS_TTL_SECONDS,
    ):
        self.redis = redis
        self.flush_interval = flush_interval
        self.lease_seconds = max(1, int(lease_seconds))
        # Script arguments, encoded once (redis-py passes bytes through as they are).
        self._claim_args = (b"%d" % self.lease_seconds, b"%d" % DEDUPE_TTL_SECONDS, b"0")
        self._claim_and_read_args = (*self._claim_args[:2], b"1")
        self._renew_args = (b"%d" % self.lease_seconds,)
        # Pending marks by slot (on a plain Redis, all under slot 0).
        self._pending: dict[int, set[str]] = {}
        self._slot = slot_of if is_cluster(redis) else _one_slot
        self._claims = 0  # claims made so far (the writer watches for quiet intervals)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._claim = redis.register_script(_CLAIM_SCRIPT)
        self._mark = redis.register_script(_MARK_SCRIPT)
        self._renew = redis.register_script(_RENEW_SCRIPT)
        # Claims of this runtime whose update is in hand (their leases are renewed).
        self._held: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """How many ``done`` marks are not written to Redis yet."""
        return sum(len(marks) for marks in self._pending.values())

    @staticmethod
    def key(tenant: Tenant, update_id: int) -> str:
        """The Redis key of ``update_id`` for the tenant's current bot."""
        return tenant.key("updates", tenant.config.bot.bot_id, update_id)

    async def claim(self, key: str, *, prefetch: str | None = None) -> tuple[Claim, str | None]:
        """Try to take ``key`` for processing, reading ``prefetch`` in the same round trip.

        Pending ``done`` marks of this runtime are written by the same call.

        Args:
            key: from :meth:`key`.
            prefetch: another Redis key to read along (the update's FSM state
                key), so processing does not need a round trip of its own.

        Returns:
            The claim outcome and the value of ``prefetch`` (None when not asked,
            not set, or not claimed).

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis is unreachable
                (the carried marks stay pending).
        """
        self._claims += 1
        slot = self._slot(key)
        marks = self._take_pending(slot)
        try:
            claimed, value = await self._claim(
                keys=[key, prefetch if prefetch is not None else key, *marks],
                args=self._claim_args if prefetch is None else self._claim_and_read_args,
            )
        except BaseException:
            self._pending.setdefault(slot, set()).update(marks)
            raise
        if claimed:
            self._held.add(key)
            return Claim.CLAIMED, value
        if value == "done" or key in self._pending.get(slot, ()):
            return Claim.DONE, None
        return Claim.IN_PROGRESS, None

    def done(self, key: str) -> None:
        """Record that ``key`` was processed; written by the next claim (of its slot) or flush.

        Its lease is renewed until the mark is written.
        """
        self._held.discard(key)
        self._pending.setdefault(self._slot(key), set()).add(key)
        self._wakeup.set()

    async def complete(self, key: str) -> None:
        """Mark ``key`` done now, in its own round trip (polling: before the batch goes on).

        Raises nothing: while Redis is unreachable the mark is left pending
        for the next claim or flush, and the failure is logged.
        """
        self._pending.get(self._slot(key), set()).discard(key)
        self._held.discard(key)
        try:
            await self._mark(keys=[key], args=_MARK_ARGS)
        except STORAGE_UNAVAILABLE as exc:
            log.warning("dedupe_mark_failed", keys=1, error=str(exc))
            self.done(key)

    def take_over(self, key: str) -> None:
        """Hold ``key``, whose claim a dead poller left, as this runtime's (its lease is renewed)."""
        self._held.add(key)

    async def release(self, key: str, *, quiet: bool = True) -> None:
        """Give up a claim (processing could not happen), so a re-delivery is processed.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: only when not
                ``quiet``; the claim then expires with its lease.
        """
        self._held.discard(key)
        if not quiet:
            await self.redis.delete(key)
            return
        with contextlib.suppress(*STORAGE_UNAVAILABLE):
            await self.redis.delete(key)

    def start(self) -> None:
        """Start the background writer and the lease renewer."""
        self._task = asyncio.create_task(self._run(), name="tenantry-update-ledger")
        self._renewer = asyncio.create_task(self._renew_leases(), name="tenantry-claim-leases")

    async def stop(self) -> None:
        """Stop the writer after a last flush, and the lease renewer."""
        for task in (self._task, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._renewer = None
        while self._pending:
            if not await self._flush():
                break

    def _take_pending(self, slot: int) -> list[str]:
        """Up to :data:`MAX_MARKS_PER_CALL` pending marks of ``slot``, removed from pending."""
        pending = self._pending.get(slot)
        if not pending:
            return []
        if len(pending) <= MAX_MARKS_PER_CALL:
            del self._pending[slot]
            return list(pending)
        return [pending.pop() for _ in range(MAX_MARKS_PER_CALL)]

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            # Under load every claim carries the marks: write them here only once
            # a whole interval passed without a claim (a quiet runtime).
            while True:
                claims = self._claims
                await asyncio.sleep(self.flush_interval)
                if self._claims == claims:
                    break
            self._wakeup.clear()
            while self._pending and await self._flush():
                pass

    async def _renew_leases(self) -> None:
        """Every third of the lease, renew the claims in hand (one script call per slot)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            by_slot: dict[int, list[str]] = {}
            for key in self._held:
                by_slot.setdefault(self._slot(key), []).append(key)
            for slot, marks in self._pending.items():  # done, but the mark is not written yet
                by_slot.setdefault(slot, []).extend(marks)
            for keys in by_slot.values():
                try:
                    await self._renew(keys=keys, args=self._renew_args)
                except STORAGE_UNAVAILABLE as exc:
                    # Expired meanwhile: a re-delivery may be handled twice (at least once).
                    log.warning("claim_renewal_failed", keys=len(keys), error=str(exc))

    async def _flush(self) -> bool:
        """Write pending marks of one slot; False when Redis failed (they are dropped, see below)."""
        slot = next(iter(self._pending), None)
        marks = self._take_pending(slot) if slot is not None else []
        if not marks:
            self._pending.pop(slot, None)  # type: ignore[arg-type]
            return True
        try:
            await self._mark(keys=marks, args=_MARK_ARGS)
        except STORAGE_UNAVAILABLE as exc:
            # The claims expire on their own; a re-delivery is then processed again.
            log.warning("dedupe_flush_failed", keys=len(marks), error=str(exc))
            return False
        return True


def _one_slot(key: str) -> int:
    """Slot of every key on a plain Redis: one group of pending marks."""
    return 0
