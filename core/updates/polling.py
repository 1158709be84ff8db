"""Polling tenants: one poller per bot across runtimes (a Redis lock), each update through the protocol.

Telegram allows one getUpdates consumer per bot (Bot API: getUpdates is
refused while another long poll or a webhook is active), so among runtimes
sharing a Redis only the holder of the tenant's polling lock polls. The lock
lives :data:`POLLING_LOCK_SECONDS` and is renewed every third of it, so
another runtime takes over within about 10 s of the holder's death.

Every polled update goes through :func:`core.updates.protocol.deliver`, as a
webhook update does: claimed in the update ledger (and marked done before the
next one), FSM state read with the claim, counted, logged with ``tenant`` and
``update_id``. An update is confirmed (the next getUpdates ``offset``) only
once handled, so a poller killed mid-batch loses nothing, and the next one
skips the updates already done and takes over the claim the dead one held.
An update deferred by a PostgreSQL or Redis outage is not confirmed: the
batch is fetched again from it a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import GetUpdates
from aiogram.types import Update
from redis.exceptions import LockError

from core.errors import STORAGE_UNAVAILABLE
from core.updates.protocol import Outcome

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.runtime.tenant import Tenant

__all__ = [
    "POLLING_LOCK_SECONDS",
    "POLLING_TIMEOUT_SECONDS",
    "RETRY_FIRST_DELAY",
    "RETRY_MAX_DELAY",
    "poll",
]

log = structlog.get_logger("tenantry.polling")

POLLING_LOCK_SECONDS = 6
"""A dead poller's lock expires after this long (seconds); the holder renews it every third."""
POLLING_TIMEOUT_SECONDS = 10
"""getUpdates long-polling timeout (Bot API ``getUpdates.timeout``), seconds."""
RETRY_FIRST_DELAY = 1.0
"""First wait after a failed getUpdates, seconds; doubled at each failure."""
RETRY_MAX_DELAY = 60.0
"""Longest wait between getUpdates attempts, seconds."""
DEFERRED_RETRY_SECONDS = 1.0
"""Wait before fetching a batch again from an update deferred by a storage outage."""
STOP_GRACE_SECONDS = 30.0
"""How long a poller that lost its lock lets the update in hand finish before it is cancelled."""

Deliver = Callable[["Tenant", Update], Awaitable[Outcome]]
"""Hands one polled update to the protocol (:func:`core.updates.protocol.deliver` with ``take_over``)."""


async def poll(tenant: Tenant, redis: Redis, deliver: Deliver) -> None:
    """Poll ``tenant``'s bot while this runtime holds its polling lock, until cancelled.

    Args:
        tenant: a polling tenant with its Dispatcher built.
        redis: the shared Redis client (the lock ``<prefix>polling-lock``).
        deliver: handles one update and says what became of it.

    A getUpdates that fails (the Bot API unreachable, a 5xx, a conflict) is
    logged as one ``polling_failed`` warning per attempt, without a
    traceback, and retried after 1, 2, 4 ... 60 s (``retry_after`` of a 429).
    """
    # Log lines of this task name the tenant.
    structlog.contextvars.bind_contextvars(tenant=tenant.id)
    lock = redis.lock(tenant.key("polling-lock"), timeout=POLLING_LOCK_SECONDS)
    receiver = _Receiver(tenant, deliver)
    while True:
        try:
            acquired = await lock.acquire(blocking=False)
        except (OSError, *STORAGE_UNAVAILABLE) as exc:  # Redis away: nobody polls until it is back
            tenant.log.warning("polling_lock_unavailable", error=str(exc) or type(exc).__name__)
            acquired = False
        if not acquired:
            await asyncio.sleep(POLLING_LOCK_SECONDS / 3)
            continue
        tenant.log.info("polling_lock_acquired")
        receiving = asyncio.create_task(receiver.run(), name=f"getUpdates:{tenant.id}")
        try:
            while not receiving.done():
                await asyncio.wait({receiving}, timeout=POLLING_LOCK_SECONDS / 3)
                if not receiving.done():
                    await lock.extend(POLLING_LOCK_SECONDS, replace_ttl=True)
        except (LockError, OSError, *STORAGE_UNAVAILABLE):
            # Lost, or not renewable while Redis is away: another runtime may poll soon.
            tenant.log.warning("polling_lock_lost")
            await receiver.stop(receiving, grace=STOP_GRACE_SECONDS)
        finally:
            # Cancelled (the tenant stops): an update in hand is given back to the next poller.
            await receiver.stop(receiving, grace=0.0)
            with contextlib.suppress(LockError, OSError, *STORAGE_UNAVAILABLE):
                await lock.release()


class _Receiver:
    """The getUpdates loop of one tenant; its offset survives a lost and re-acquired lock."""

    def __init__(self, tenant: Tenant, deliver: Deliver):
        self.tenant = tenant
        self.deliver = deliver
        self.offset: int | None = None
        self.handling = False
        self.stopping = False
        self.attempt = 0
        self.delay = RETRY_FIRST_DELAY

    async def run(self) -> None:
        """Fetch and deliver updates until :meth:`stop`."""
        tenant = self.tenant
        self.stopping = False
        # Bot API getUpdates.allowed_updates: the update types the tenant's routers handle.
        allowed = tenant.dispatcher.resolve_used_update_types()
        # Wait longer than the long poll itself before calling the request timed out.
        request_timeout = int(tenant.bot.session.timeout or 0) + POLLING_TIMEOUT_SECONDS
        while not self.stopping:
            method = GetUpdates(
                offset=self.offset, timeout=POLLING_TIMEOUT_SECONDS, allowed_updates=allowed
            )
            try:
                updates = await tenant.bot(method, request_timeout=request_timeout)
            except Exception as exc:  # every Bot API or network failure: retried, never fatal
                self.attempt += 1
                wait = float(exc.retry_after) if isinstance(exc, TelegramRetryAfter) else self.delay
                tenant.log.warning(
                    "polling_failed",
                    attempt=self.attempt,
                    error=str(exc) or type(exc).__name__,
                    retry_in=wait,
                )
                await asyncio.sleep(wait)
                if not isinstance(exc, TelegramRetryAfter):
                    self.delay = min(self.delay * 2, RETRY_MAX_DELAY)
                continue
            self.attempt, self.delay = 0, RETRY_FIRST_DELAY
            for update in updates:
                if self.stopping:
                    return
                self.handling = True
                try:
                    outcome = await self.deliver(tenant, update)
                finally:
                    self.handling = False
                if outcome in (Outcome.DEFERRED, Outcome.UNAVAILABLE):
                    await asyncio.sleep(DEFERRED_RETRY_SECONDS)
                    break  # not confirmed: fetched again from this update
                # Bot API getUpdates.offset: updates below it are confirmed.
                self.offset = update.update_id + 1

    async def stop(self, receiving: asyncio.Task[None], *, grace: float) -> None:
        """Stop the loop: at once while it waits for updates, else after the update in hand (``grace`` s)."""
        if receiving.done():
            return
        self.stopping = True
        if self.handling and grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(receiving), grace)
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiving
