"""One WebSocket connection: subscriptions with cursors, a bounded send queue, keep-alive.

Every frame the client gets on a topic follows the previous one in the
topic's chain (:mod:`plugins.realtime.feed`), whichever way it came: live
from the runtime's Channels subscriber, or read from the stream after a
reconnect, a dropped pub/sub message or a full queue. So the client sees
each event once and in order, or a ``reset`` when what it missed is no
longer kept.

Memory per connection is bounded: at most ``queue_size`` frames wait to be
sent. A topic whose next frame does not fit is marked lagging and read from
the stream once the queue has drained, however far behind it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar.exceptions import WebSocketDisconnect

from plugins.realtime.feed import Feed, Gap, id_after, parse_id
from plugins.realtime.hub import Hub, decode_live

if TYPE_CHECKING:
    from litestar import WebSocket
    from litestar.channels import Subscriber

    from core import Tenant
    from plugins.realtime.config import RealtimeSettings
    from plugins.realtime.tickets import Ticket

__all__ = ["IDLE_CLOSE_CODE", "Session"]

log = structlog.get_logger("tenantry.realtime")

IDLE_CLOSE_CODE = 4408
"""Close code for a client silent for two ping intervals."""

_CATCH_UP_BATCH = 500


class Session:
    """Serves one accepted WebSocket until the client leaves or goes silent.

    Args:
        socket: the accepted WebSocket.
        tenant: its tenant.
        settings: the tenant's realtime settings.
        ticket: what the redeemed ticket grants.
        all_topics: every topic of the tenant (to tell unknown from forbidden).
    """

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        tenant: Tenant,
        settings: RealtimeSettings,
        ticket: Ticket,
        all_topics: list[str],
    ):
        self._socket = socket
        self._tenant = tenant
        self._settings = settings
        self._ticket = ticket
        self._all_topics = set(all_topics)
        self._feed = Feed(tenant, settings.history_count, settings.history_seconds)
        self._hub = Hub.of(tenant.plain_redis)
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.queue_size)
        self._cursors: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._subscribers: dict[str, Subscriber] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._lagging: set[str] = set()
        self._closing: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Read the client's messages, send frames, ping; return when the connection is over."""
        self._start(self._write(), "realtime-write")
        self._start(self._keep_alive(), "realtime-ping")
        try:
            await self._read()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for subscriber in self._subscribers.values():
                await self._hub.unsubscribe(subscriber)

    def _start(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A sending task that fails (Redis unreachable) ends the connection: the client reconnects."""
        if task.cancelled() or task.exception() is None:
            return
        log.warning("realtime_connection_failed", tenant=self._tenant.id, who=self._ticket.who,
                    task=task.get_name(), error=f"{type(task.exception()).__name__}: {task.exception()}")  # fmt: skip
        self._closing = asyncio.ensure_future(self._close(1011, "server error, reconnect"))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._socket.close(code=code, reason=reason)

    # ------------------------------------------------------------ client messages

    async def _read(self) -> None:
        silence = 2 * self._settings.ping_seconds
        while True:
            try:
                raw = await asyncio.wait_for(self._socket.receive_text(), silence)
            except TimeoutError:
                log.info("realtime_client_silent", tenant=self._tenant.id, who=self._ticket.who)
                await self._close(IDLE_CLOSE_CODE, "no message for 2 pings")
                return
            except (WebSocketDisconnect, RuntimeError):
                return
            await self._on_message(raw)

    async def _on_message(self, raw: str) -> None:
        if len(raw) > self._settings.max_message_bytes:
            self._control({"type": "error", "code": "realtime.bad_message", "detail": "too large"})
            return
        try:
            message = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            self._control({"type": "error", "code": "realtime.bad_message", "detail": "not JSON"})
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            self._control({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe" and isinstance(message.get("topics"), dict):
            for topic, cursor in message["topics"].items():
                await self._subscribe(str(topic), cursor)
        else:
            self._control(
                {
                    "type": "error",
                    "code": "realtime.bad_message",
                    "detail": 'expected {"type": "subscribe", "topics": {...}}, "ping" or "pong"',
                }
            )

    async def _subscribe(self, topic: str, cursor: Any) -> None:
        if topic not in self._ticket.topics:
            code = (
                "realtime.topic_forbidden"
                if topic in self._all_topics
                else "realtime.unknown_topic"
            )
            self._control({"type": "error", "code": code, "topic": topic[:100],
                           "detail": f"this ticket does not open {topic[:100]!r}"})  # fmt: skip
            return
        if cursor is not None:
            try:
                parse_id(str(cursor))
            except ValueError:
                self._control({"type": "error", "code": "realtime.bad_message", "topic": topic,
                               "detail": "a cursor is an event id such as 1767225600000-0"})  # fmt: skip
                return
        lock = self._locks.setdefault(topic, asyncio.Lock())
        if topic not in self._subscribers:
            # Live first, then the cursor: nothing published in between is lost.
            subscriber = await self._hub.subscribe(self._feed.channel(topic))
            self._subscribers[topic] = subscriber
            self._start(self._pump(topic, subscriber), f"realtime-live:{topic}")
        async with lock:
            start = str(cursor) if cursor is not None else await self._feed.last_id(topic)
            self._cursors[topic] = start
            self._control({"type": "subscribed", "topic": topic, "cursor": start})
            if cursor is not None:
                await self._catch_up(topic)

    # ------------------------------------------------------------ frames

    def _control(self, frame: dict[str, Any]) -> None:
        """Queue a control frame; dropped when the queue is full (the client is far behind)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(msgspec.json.encode(frame).decode())

    def _offer(self, topic: str, entry_id: str, frame: str) -> bool:
        """Queue the frame that follows ``topic``'s cursor; False (lagging) when it does not fit."""
        if len(frame) > self._settings.max_message_bytes:
            frame = msgspec.json.encode(
                {
                    "type": "reset",
                    "topic": topic,
                    "reason": "an event was larger than max_message_bytes",
                }
            ).decode()
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._lagging.add(topic)
            return False
        self._cursors[topic] = entry_id
        return True

    async def _pump(self, topic: str, subscriber: Subscriber) -> None:
        """Live messages of ``topic`` from this runtime's Channels subscriber."""
        lock = self._locks[topic]
        async for raw in subscriber.iter_events():
            live = decode_live(raw)
            if live is None:
                continue
            async with lock:
                cursor = self._cursors.get(topic)
                if cursor is None or topic in self._lagging or not id_after(live.id, cursor):
                    continue  # not subscribed yet, caught up later, or already sent
                if live.prev == cursor:
                    self._offer(topic, live.id, live.frame)
                else:
                    await self._catch_up(topic)  # a message we never saw came before this one

    async def _catch_up(self, topic: str) -> None:
        """Queue what follows ``topic``'s cursor from the stream, as far as the queue allows.

        Call with the topic's lock held.
        """
        while True:
            room = self._queue.maxsize - self._queue.qsize()
            if room <= 0:
                self._lagging.add(topic)
                return
            try:
                entries = await self._feed.after(
                    topic, self._cursors[topic], min(room, _CATCH_UP_BATCH)
                )
            except Gap as gap:
                self._cursors[topic] = await self._feed.last_id(topic)
                self._control({"type": "reset", "topic": topic, "reason": str(gap)})
                return
            for entry in entries:
                if not self._offer(topic, entry.id, entry.frame):
                    return
            if len(entries) < min(room, _CATCH_UP_BATCH):
                self._lagging.discard(topic)
                return

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            await self._socket.send_text(frame)
            if self._lagging and self._queue.empty():
                for topic in list(self._lagging):
                    async with self._locks[topic]:
                        self._lagging.discard(topic)
                        await self._catch_up(topic)

    async def _keep_alive(self) -> None:
        """Ping every interval; also read each topic's stream, healing a lost live message."""
        # Connections opened together (a runtime restart) must not all read Redis at one instant.
        await asyncio.sleep(self._settings.ping_seconds * random.uniform(0.5, 1.0))
        while True:
            self._control({"type": "ping", "at": int(time.time())})
            for topic in list(self._cursors):
                async with self._locks[topic]:
                    await self._catch_up(topic)
            await asyncio.sleep(self._settings.ping_seconds)
