"""Live fan-out across runtimes: one Redis pub/sub listener per runtime, one reader per topic.

The realtime plugin's ``on_event`` runs on one runtime per event (the core's
consumer group); it appends the event to the topic's stream and publishes the
entry on the topic's channel, which Redis pub/sub delivers to every runtime.
On each runtime the hub holds one pub/sub connection for every channel its
connections follow (the way Litestar Channels' Redis pub/sub backend does,
which this replaces: its worker ends for good on the first Redis error, and
it gives every connection a queue and a task of its own). A message is
decoded once per runtime, and its ASGI ``websocket.send`` message is built
once and handed to every connection following the topic
(:meth:`plugins.realtime.session.Session.on_live`).

Nothing is lost when pub/sub loses something: each entry names its
predecessor (:mod:`plugins.realtime.feed`), so a connection that sees a gap
reads the stream; after the listener reconnected, every connection of the
runtime reads what it may have missed; and every :data:`HEAL_SECONDS` the hub
compares each topic's newest entry of the round before with the
connections' cursors (one read per topic and runtime, not per connection).

Connections read the topic streams (a cursor's catch-up, a gap) through
:attr:`Hub.reads`, a bound of :data:`STREAM_READS` reads at once per runtime,
so a thousand connections subscribing together cannot take every
connection of the runtime's shared Redis pool.

The hub is started by the first tenant with realtime that starts on this
runtime and closed when the last one stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import structlog
from redis.asyncio.client import PubSub

from plugins.realtime.feed import id_after, parse_id

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from plugins.realtime.feed import Entry, Feed

__all__ = [
    "HEAL_SECONDS",
    "STREAM_READS",
    "Follower",
    "Hub",
    "LiveMessage",
    "behind",
    "decode_live",
]

log = structlog.get_logger("tenantry.realtime")

STREAM_READS = 16
"""Stream reads of this runtime's connections in flight at once (the rest wait their turn)."""

HEAL_SECONDS = 5.0
"""Seconds between two comparisons of each topic's newest entry with its followers' cursors."""

REORDER_SECONDS = 0.1
"""How long a live message waits for the one before it (published by another runtime)."""

SUBSCRIBE_WAIT_SECONDS = 5.0
"""How long a first follower of a channel waits for Redis to confirm the subscription."""

_MAX_BACKOFF_SECONDS = 5.0
_FILL_LIMIT = 100

_HUBS: dict[int, Hub] = {}


class LiveMessage(msgspec.Struct, frozen=True, array_like=True):
    """What the channel carries: the entry id, its predecessor, and the frame."""

    id: str
    prev: str
    frame: str


class Follower(Protocol):
    """A connection following topics (:class:`plugins.realtime.session.Session`)."""

    def on_live(self, topic: str, live: LiveMessage, message: dict[str, Any]) -> None:
        """A live entry of ``topic``; ``message`` is its ready ASGI ``websocket.send`` message."""

    def heal(self, topic: str, newest: str | None) -> None:
        """Read ``topic``'s stream after the cursor: entries up to ``newest`` may have been missed
        (None: anything may have been, the listener lost its connection)."""


class _Topic:
    """One channel of this runtime: its followers, the order of its entries, the subscription.

    Two runtimes' consumers append a topic's entries one after the other, and
    each publishes its own: the second entry's message may come first. A
    message that does not follow the last one delivered (``head``) waits, at
    most :data:`REORDER_SECONDS`, for the one before it; then the entries in
    between are read from the stream once for every follower of the runtime
    (not once per follower), and delivered in order with what waited.
    """

    __slots__ = ("feed", "filling", "followers", "head", "name", "pending", "reads", "ready",
                 "timer")  # fmt: skip

    def __init__(self, name: str, feed: Feed, reads: asyncio.Semaphore):
        self.name = name
        self.feed = feed
        self.reads = reads
        self.followers: dict[Follower, None] = {}  # insertion-ordered set
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head: str | None = None
        self.pending: dict[str, tuple[LiveMessage, dict[str, Any]]] = {}  # by predecessor
        self.timer: asyncio.TimerHandle | None = None
        self.filling: asyncio.Task[None] | None = None

    def receive(self, live: LiveMessage) -> None:
        """Deliver ``live`` in its place in the topic's chain."""
        if self.head is not None and (live.prev != self.head or self.filling is not None):
            if not id_after(live.id, self.head):
                return  # delivered before (an event redelivered to the consumers)
            self.pending[live.prev] = (live, _text(live.frame))
            if self.timer is None and self.filling is None:
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(REORDER_SECONDS, self.fill)
            return
        self._deliver(live, _text(live.frame))
        self._deliver_pending()
        if not self.pending and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def fill(self) -> None:
        """The entry before what waits did not come in time: read the gap from the stream."""
        self.timer = None
        if self.pending and self.filling is None:
            self.filling = asyncio.create_task(self._fill(), name=f"realtime-fill:{self.name}")

    def cancel(self) -> None:
        """Stop the timer and the read (the last follower left)."""
        if self.timer is not None:
            self.timer.cancel()
        if self.filling is not None:
            self.filling.cancel()

    async def _fill(self) -> None:
        head = self.head
        entries: list[Entry] = []
        try:
            if head is not None:
                async with self.reads:
                    entries = await self.feed.after(self.name, head, _FILL_LIMIT)
        except Exception as exc:  # Gap or Redis: the followers find the gap and read themselves
            log.info("realtime_fill_failed", topic=self.name, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.filling = None
        for entry in entries:
            if self.head is None or id_after(entry.id, self.head):
                self._deliver(LiveMessage(entry.id, entry.prev, entry.frame), _text(entry.frame))
        self._deliver_pending()
        if self.pending:  # still a gap: deliver in order; each follower reads what it lacks
            waiting = sorted(self.pending.values(), key=lambda item: parse_id(item[0].id))
            self.pending.clear()
            for live, message in waiting:
                self._deliver(live, message)

    def _deliver_pending(self) -> None:
        while self.head in self.pending:
            self._deliver(*self.pending.pop(self.head))
        for prev in [
            p for p, (live, _) in self.pending.items() if not id_after(live.id, self.head or "0-0")
        ]:
            del self.pending[prev]  # read from the stream meanwhile

    def _deliver(self, live: LiveMessage, message: dict[str, Any]) -> None:
        self.head = live.id
        for follower in list(self.followers):
            follower.on_live(self.name, live, message)


def _text(frame: str) -> dict[str, Any]:
    # One ASGI message per entry and runtime, handed to every follower as it is.
    return {"type": "websocket.send", "text": frame}


class _Listener(PubSub):
    """A PubSub that tells the hub when its connection was re-established.

    redis-py reconnects a pub/sub connection by itself (and subscribes its
    channels again) when a read fails once; messages published meanwhile are
    gone, so every follower must read its streams.
    """

    def __init__(self, hub: Hub, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._hub = hub
        self._connected_before = False

    async def on_connect(self, connection: Any) -> None:
        """Subscribe the channels again; after the first connection, heal every follower."""
        await super().on_connect(connection)
        if self._connected_before:
            self._hub.heal_all("pub/sub reconnected")
        self._connected_before = True


class Hub:
    """This runtime's live fan-out for realtime, shared by its tenants.

    Args:
        redis: the runtime's plain Redis client (:attr:`core.runtime.tenant.Tenant.plain_redis`:
            the shared one, or on a Redis Cluster the queue Redis, as pub/sub needs one server).

    Attributes:
        reads: the bound on this runtime's connections' stream reads (:data:`STREAM_READS`).
    """

    def __init__(self, redis: Redis):
        self._redis = redis
        self._users = 0
        self._lock = asyncio.Lock()
        self._topics: dict[str, _Topic] = {}
        self._pubsub: _Listener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wanted = asyncio.Event()
        self._subscribing = asyncio.Lock()
        self.reads = asyncio.Semaphore(STREAM_READS)

    @classmethod
    def of(cls, redis: Redis) -> Hub:
        """The hub of ``redis`` (one per runtime: the runtime has one Redis client)."""
        hub = _HUBS.get(id(redis))
        if hub is None or hub._redis is not redis:
            hub = _HUBS[id(redis)] = cls(redis)
        return hub

    async def acquire(self) -> None:
        """Count a tenant using the hub; the first one starts the listener."""
        async with self._lock:
            if self._users == 0:
                self._tasks = [
                    asyncio.create_task(self._listen(), name="realtime-listener"),
                    asyncio.create_task(self._heal_periodically(), name="realtime-heal"),
                ]
            self._users += 1

    async def release(self) -> None:
        """Uncount a tenant; the last one stops the listener."""
        async with self._lock:
            self._users -= 1
            if self._users == 0:
                for task in self._tasks:
                    task.cancel()
                for task in self._tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                self._tasks = []
                _HUBS.pop(id(self._redis), None)

    async def publish(self, channel: str, entry: Entry) -> None:
        """Send ``entry`` to every runtime's followers of ``channel``."""
        payload = msgspec.json.encode(LiveMessage(entry.id, entry.prev, entry.frame))
        await self._redis.publish(channel, payload)

    # ------------------------------------------------------------ followers

    async def follow(self, topic_name: str, feed: Feed, follower: Follower) -> None:
        """Add ``follower`` to ``topic_name``; return once its channel's messages reach this runtime.

        The first follower of a channel subscribes it and waits (at most
        :data:`SUBSCRIBE_WAIT_SECONDS`) for Redis to confirm, and so does any
        follower joining before that; a later cursor read then cannot miss
        an entry published in between.
        """
        channel = feed.channel(topic_name)
        topic = self._topics.get(channel)
        if topic is None:
            topic = self._topics[channel] = _Topic(topic_name, feed, self.reads)
            topic.followers[follower] = None
            self._wanted.set()
            async with self._subscribing:
                if self._pubsub is not None:
                    # A failure here is the listener's too: it reconnects and subscribes every channel.
                    with contextlib.suppress(Exception):
                        await self._pubsub.subscribe(channel)
        topic.followers[follower] = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(topic.ready), SUBSCRIBE_WAIT_SECONDS)

    async def unfollow(self, topic_name: str, feed: Feed, follower: Follower) -> None:
        """Remove ``follower`` from ``topic_name``; the last one unsubscribes its channel."""
        channel = feed.channel(topic_name)
        topic = self._topics.get(channel)
        if topic is None:
            return
        topic.followers.pop(follower, None)
        if not topic.followers:
            del self._topics[channel]
            topic.cancel()
            async with self._subscribing:
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

    def heal_all(self, why: str) -> None:
        """Have every follower of every channel read what it may have missed."""
        log.info("realtime_heal_all", reason=why, channels=len(self._topics))
        for topic in list(self._topics.values()):
            topic.head = None  # what follows may not follow what came before the break
            for follower in list(topic.followers):
                follower.heal(topic.name, None)

    # ------------------------------------------------------------ the listener

    async def _listen(self) -> None:
        backoff = 0.1
        broken = False
        while True:
            await self._wanted.wait()
            pubsub = _Listener(self, self._redis.connection_pool)
            try:
                async with self._subscribing:
                    if not self._topics:
                        self._wanted.clear()
                        continue
                    self._pubsub = pubsub
                    await pubsub.subscribe(*self._topics)
                if broken:
                    self.heal_all("pub/sub listener restarted")
                # The connection stays open when every channel is unsubscribed: it is one.
                while True:
                    message = await pubsub.get_message(timeout=None)
                    backoff, broken = 0.1, False
                    if message is not None:
                        self._on_message(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                broken = True
                log.warning("realtime_listener_failed", error=f"{type(exc).__name__}: {exc}",
                            retry_in=backoff)  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        topic = self._topics.get(channel)
        if topic is None:
            return
        if kind == "subscribe":
            if not topic.ready.done():
                topic.ready.set_result(None)
            return
        if kind != "message":
            return
        live = decode_live(message["data"])
        if live is not None:
            topic.receive(live)

    async def _heal_periodically(self) -> None:
        # A follower is healed up to the newest entry of the round before: that
        # one's live message had HEAL_SECONDS to arrive. The newest entry of this
        # round may be on its way, and reading it for every follower would be a
        # read per connection each time an event and a round meet.
        seen: dict[_Topic, str] = {}
        while True:
            await asyncio.sleep(HEAL_SECONDS)
            for topic in list(self._topics.values()):
                try:
                    async with self.reads:
                        newest = await topic.feed.last_id(topic.name)
                except Exception as exc:
                    log.warning("realtime_heal_failed", topic=topic.name,
                                error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                    continue
                before, seen[topic] = seen.get(topic), newest
                if before is not None:
                    for follower in list(topic.followers):
                        follower.heal(topic.name, before)
            for gone in seen.keys() - set(self._topics.values()):
                del seen[gone]


def behind(cursor: str, newest: str) -> bool:
    """True when a follower at ``cursor`` has not seen ``newest`` yet."""
    return cursor != newest and id_after(newest, cursor)


def decode_live(raw: Any) -> LiveMessage | None:
    """The message a channel carried, or None when it is not one of ours."""
    try:
        return msgspec.json.decode(raw, type=LiveMessage)
    except (msgspec.DecodeError, TypeError):
        return None
