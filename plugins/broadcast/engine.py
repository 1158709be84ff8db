"""The delivery engine: each runtime's campaign worker for one tenant.

Every runtime runs one :class:`CampaignWorker` per tenant that enables the
plugin (started in ``on_tenant_started``). It watches the tenant's due set in
Redis (campaign id -> when it may run: a sorted set, one cheap call per
second) and runs each due campaign in a task of its own:

1. claim a batch of pending deliveries (``FOR UPDATE SKIP LOCKED``), so any
   number of runtimes share a campaign without two ever taking one row;
2. for each row: wait for the bot's slot (:class:`~core.updates.limiter.BotLimiter`,
   shared by all runtimes), set it ``sending`` in a committed statement, call
   the Bot API, record the outcome;
3. when nothing is pending or in flight, mark the campaign done (one runner
   wins the conditional update) and report.

A runner proves it is alive with a Redis key that expires
``failover_seconds`` (a setting) after its last heartbeat. Rows a dead runner held
go back to pending, and rows it had set ``sending`` become ``unknown``:
Telegram has no idempotency key, so they are never sent again unless an admin
asks (``POST .../retry-unknown``). A kill -9 thus costs at most the sends in
flight. Campaigns do not run in the core's saq queue: one runs for minutes
and would hold a worker slot that reminders need, and a job of a killed
runtime waits for its timeout before saq runs it again.

Tenants never wait for each other: each has its own tasks, its own limiter
key (its bot) and its own connection share (``TenantDB``); there is no lock
shared between tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import STORAGE_UNAVAILABLE
from core.updates.limiter import BotLimiter, bot_rate_key
from plugins.broadcast import repository as repo
from plugins.broadcast.sending import Outcome, send_content, unsubscribe_markup

if TYPE_CHECKING:
    from core import Tenant
    from plugins.broadcast.config import BroadcastSettings

__all__ = ["CampaignWorker", "worker_of"]

POLL_SECONDS = 1.0
"""How often a worker looks for due campaigns (scheduled ones, other runtimes' resumes)."""
LEASE_SECONDS = 60.0
"""A claim lapses after this many seconds even if its runner lives (it stalled)."""
SWEEP_SECONDS = 3.0
"""How often a running campaign looks for rows of dead runners."""
BACKOFF_SECONDS = 1.0
"""First wait before a 5xx or network failure is sent again (then doubled per attempt)."""
QUIET_CHECK_SECONDS = 30.0

_WORKERS: weakref.WeakKeyDictionary[Any, CampaignWorker] = weakref.WeakKeyDictionary()


def worker_of(tenant: Tenant) -> CampaignWorker | None:
    """The running worker of ``tenant`` in this runtime, or None."""
    return _WORKERS.get(tenant)


def due_key(tenant: Tenant) -> str:
    """Redis sorted set: campaign id -> unix time from which it may run."""
    return tenant.key("broadcast", "due")


async def mark_due(tenant: Tenant, campaign_id: int, at: datetime | None = None) -> None:
    """Let every runtime's worker run ``campaign_id`` from ``at`` (now when None)."""
    score = at.timestamp() if at is not None else 0
    await tenant.redis.zadd(due_key(tenant), {str(campaign_id): score})
    worker = worker_of(tenant)
    if worker is not None:
        worker.wake.set()


async def clear_due(tenant: Tenant, campaign_id: int) -> None:
    """Take ``campaign_id`` out of the due set (paused, cancelled, done)."""
    await tenant.redis.zrem(due_key(tenant), str(campaign_id))


class CampaignWorker:
    """This runtime's runner of one tenant's campaigns.

    Args:
        tenant: the tenant.
        settings: its ``features.broadcast``.
    """

    def __init__(self, tenant: Tenant, settings: BroadcastSettings):
        self.tenant = tenant
        self.settings = settings
        self.runner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.limiter = BotLimiter(tenant.redis, bot_rate_key(tenant), settings.rate_per_second)
        self.wake = asyncio.Event()
        self.runs: dict[int, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_sweep: dict[int, float] = {}
        self._progress_at: dict[int, float] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Heartbeat, rebuild the due set from PostgreSQL, and start watching it."""
        _WORKERS[self.tenant] = self
        await self._beat()
        rows = await self.tenant.db.fetch(*_ACTIVE)
        if rows:
            await self.tenant.redis.zadd(
                due_key(self.tenant),
                {
                    str(r["id"]): (
                        r["scheduled_at"].timestamp() if r["status"] == "scheduled" else 0
                    )
                    for r in rows
                },
            )
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name=f"broadcast-beat:{self.tenant.id}"),
            asyncio.create_task(self._watch(), name=f"broadcast-watch:{self.tenant.id}"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Let sends in flight finish (up to ``grace`` seconds), release claims, stop beating."""
        self._stopping = True
        self.wake.set()
        runs = list(self.runs.values())
        if runs:
            _, pending = await asyncio.wait(runs, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(*STORAGE_UNAVAILABLE, Exception):
            async with self.tenant.db.acquire() as conn:
                await repo.release_claims(conn, None, self.runner)
            await self.tenant.redis.delete(self._runner_key(self.runner))
        if _WORKERS.get(self.tenant) is self:
            del _WORKERS[self.tenant]

    def _runner_key(self, runner: str) -> str:
        return self.tenant.key("broadcast", "runner", runner)

    async def _beat(self) -> None:
        ttl = int(self.settings.failover_seconds * 1000)
        await self.tenant.redis.set(self._runner_key(self.runner), "1", px=ttl)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.failover_seconds / 4)
            try:
                await self._beat()
            except Exception as exc:  # Redis away: the next beat tries again
                self.tenant.log.warning("broadcast_heartbeat_failed", error=str(exc))

    async def _watch(self) -> None:
        while not self._stopping:
            try:
                due = await self.tenant.redis.zrangebyscore(
                    due_key(self.tenant), "-inf", time.time()
                )
                for member in due:
                    campaign_id = int(member)
                    if campaign_id not in self.runs:
                        task = asyncio.create_task(
                            self._run_safely(campaign_id),
                            name=f"broadcast:{self.tenant.id}:{campaign_id}",
                        )
                        self.runs[campaign_id] = task
                        task.add_done_callback(lambda _t, c=campaign_id: self.runs.pop(c, None))
            except Exception as exc:
                self.tenant.log.warning("broadcast_watch_failed", error=str(exc))
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)

    # ------------------------------------------------------------ one campaign

    async def _run_safely(self, campaign_id: int) -> None:
        try:
            await self.run(campaign_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Storage outage or a bug: this runner lets go; the watcher retries later.
            self.tenant.log.exception("broadcast_run_failed", campaign_id=campaign_id)
            await asyncio.sleep(POLL_SECONDS)

    async def run(self, campaign_id: int) -> None:
        """Send ``campaign_id`` until it is done, paused, cancelled, or this worker stops."""
        from plugins.broadcast import campaigns

        tenant = self.tenant
        campaign = await tenant.db.fetchrow(*_STATUS, campaign_id)
        if campaign is None or campaign["status"] not in ("scheduled", "running"):
            await clear_due(tenant, campaign_id)
            return
        if campaign["status"] == "scheduled":
            if not await campaigns.start_scheduled(tenant, campaign_id):
                return
        # About one second of sends: what a runtime killed mid-batch leaves for the
        # others to take over after ``failover_seconds``.
        batch_size = max(5, min(500, self.settings.rate_per_second))
        senders = max(2, min(16, self.settings.rate_per_second // 5 + 1))
        while not self._stopping:
            status = await tenant.db.fetchval(_STATUS[0], campaign_id)
            if status != "running":
                return
            if await self._wait_quiet_hours():
                continue
            await self._sweep(campaign_id)
            async with tenant.db.acquire() as conn:
                rows = await repo.claim_batch(
                    conn, campaign_id, self.runner, batch_size, LEASE_SECONDS
                )
            if not rows:
                if await self._finish_if_done(campaign_id):
                    return
                await asyncio.sleep(0.5)
                continue
            content = await tenant.db.fetchval(
                "SELECT content FROM broadcast_campaigns WHERE id = $1", campaign_id
            )
            await self._send_batch(campaign_id, _json(content), rows, senders)
            await self._maybe_progress(campaign_id)

    async def _wait_quiet_hours(self) -> bool:
        quiet = self.settings.quiet
        if quiet is None:
            return False
        ends = quiet.next_end(self.tenant.local_time(datetime.now(UTC)))
        if ends is None:
            return False
        left = (ends - self.tenant.local_time(datetime.now(UTC))).total_seconds()
        await asyncio.sleep(max(0.5, min(left, QUIET_CHECK_SECONDS)))
        return True

    async def _sweep(self, campaign_id: int) -> None:
        now = time.monotonic()
        if now - self._last_sweep.get(campaign_id, 0.0) < SWEEP_SECONDS:
            return
        self._last_sweep[campaign_id] = now
        async with self.tenant.db.acquire() as conn:
            others = await repo.other_runners(conn, campaign_id, self.runner)
            if not others:
                return
            alive = await self.tenant.redis.exists(*[self._runner_key(r) for r in others])
            if alive == len(others):
                return
            dead = [r for r in others if not await self.tenant.redis.exists(self._runner_key(r))]
            if dead:
                unknown = await repo.forget_runners(conn, campaign_id, dead)
                self.tenant.log.warning(
                    "broadcast_runner_lost", campaign_id=campaign_id, runners=dead, unknown=unknown
                )

    async def _send_batch(
        self, campaign_id: int, content: dict[str, Any], rows: list[Any], senders: int
    ) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        markup = None
        if self.settings.unsubscribe_button:
            markup = unsubscribe_markup(self.tenant.text("broadcast.unsubscribe_button"))

        async def sender() -> None:
            while not queue.empty() and not self._stopping:
                row = queue.get_nowait()
                if not await self._send_one(campaign_id, content, row, markup):
                    queue.put_nowait(row)  # a 429: the bot paused, the row goes again

        await asyncio.gather(*(sender() for _ in range(min(senders, len(rows)))))

    async def _send_one(
        self, campaign_id: int, content: dict[str, Any], row: Any, markup: Any
    ) -> bool:
        """Send one delivery; False when it must go again (429), True when it is settled."""
        tenant = self.tenant
        await self.limiter.acquire()
        async with tenant.db.acquire() as conn:
            if not await repo.mark_sending(conn, row["id"], self.runner):
                return True  # paused, cancelled, or taken over: not ours to send
        outcome = await send_content(
            tenant.bot,
            row["chat_id"],
            content,
            reply_markup=markup,
            allow_paid_broadcast=self.settings.allow_paid_broadcast,
        )
        return await self._record(row, outcome)

    async def _record(self, row: Any, outcome: Outcome) -> bool:
        tenant = self.tenant
        chat_id = row["chat_id"]
        async with tenant.db.transaction() as conn:
            if outcome.kind == "sent":
                await repo.record_result(conn, row["id"], "sent", message_id=outcome.message_id)
            elif outcome.kind == "blocked":
                await repo.record_result(
                    conn, row["id"], "blocked", error_code=outcome.error_code, error=outcome.error
                )
                await repo.unsubscribe(
                    conn, chat_id, status="blocked", reason=outcome.reason, detail=outcome.error
                )
                if outcome.error_code == 403:
                    await repo.mark_user_blocked(conn, chat_id)
            elif outcome.kind == "failed":
                await repo.record_result(
                    conn, row["id"], "failed", error_code=outcome.error_code, error=outcome.error
                )
            elif outcome.kind == "retry_after":
                await repo.back_to_pending(
                    conn, row["id"], release_for=None, error_code=429, error=outcome.error
                )
            else:  # transient: 5xx or network
                attempts = row["attempts"] + 1
                if attempts >= self.settings.max_attempts:
                    await repo.record_result(
                        conn,
                        row["id"],
                        "failed",
                        error_code=outcome.error_code,
                        error=outcome.error,
                    )
                else:
                    await repo.back_to_pending(
                        conn,
                        row["id"],
                        release_for=BACKOFF_SECONDS * 2 ** (attempts - 1),
                        error_code=outcome.error_code,
                        error=outcome.error,
                    )
        if outcome.kind == "retry_after":
            tenant.log.info(
                "broadcast_flood_wait", retry_after=outcome.retry_after, chat_id=chat_id
            )
            await self.limiter.pause(outcome.retry_after)
            return False
        if outcome.kind in ("blocked", "failed", "transient"):
            tenant.log.info(
                "broadcast_send_failed", chat_id=chat_id, outcome=outcome.kind, error=outcome.error
            )
        return True

    async def _finish_if_done(self, campaign_id: int) -> bool:
        from plugins.broadcast import campaigns

        async with self.tenant.db.acquire() as conn:
            counts = await repo.campaign_counts(conn, campaign_id)
        if counts["pending"] or counts["sending"]:
            return False
        return await campaigns.finish(self.tenant, campaign_id) or True

    async def _maybe_progress(self, campaign_id: int) -> None:
        from plugins.broadcast import campaigns

        now = time.monotonic()
        if now - self._progress_at.get(campaign_id, 0.0) < self.settings.progress_seconds:
            return
        self._progress_at[campaign_id] = now
        # One runtime reports per period, whichever gets there first.
        gate = self.tenant.key("broadcast", "progress", campaign_id)
        if await self.tenant.redis.set(
            gate, "1", nx=True, px=int(self.settings.progress_seconds * 1000)
        ):
            await campaigns.report_progress(self.tenant, campaign_id, self.limiter)


_STATUS = ("SELECT status FROM broadcast_campaigns WHERE id = $1",)
_ACTIVE = (
    "SELECT id, status, scheduled_at FROM broadcast_campaigns WHERE status IN ('scheduled', 'running')",
)


def _json(value: Any) -> dict[str, Any]:
    import json

    return json.loads(value) if isinstance(value, str) else value
