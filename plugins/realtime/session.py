"""One WebSocket connection: subscriptions with cursors, a bounded outbox, keep-alive.

Every frame the client gets on a topic follows the previous one in the
topic's chain (:mod:`plugins.realtime.feed`), whichever way it came: live
from this runtime's hub (:mod:`plugins.realtime.hub`), or read from the
stream after a reconnect, a gap in what pub/sub delivered, a restart of the
hub's listener or a full outbox. So the client sees each event once and in
order, or a ``reset`` when what it missed is no longer kept.

A topic is either *live* (the hub's messages that follow its cursor go
straight to the outbox) or *behind* (the writer reads the stream after the
cursor; live messages meanwhile are only noted, and read with the rest).
Everything runs on the event loop's one thread, so the switch between the
two is exact.

Memory per connection is bounded: at most ``queue_size`` messages wait to be
sent, and an event's message is the one the hub built for every connection.
A live message is sent at once, in the hub's loop, when nothing waits before
it (:mod:`plugins.realtime._eager`); the writer task only wakes up for what
had to queue.

Failures: a stream read that fails (Redis unreachable) is retried with
backoff for about three seconds (0.1, 0.2, 0.4, 0.8, 1.6 s), the topic staying behind, so nothing is
skipped; when it still fails the socket is closed with 1011 and the client
reconnects with its cursors (docs/plugins/realtime.md, "Reconnecting"). Any
task of the session that ends closes the connection: none can die while the
socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar.exceptions import WebSocketDisconnect
from redis.exceptions import RedisError

from plugins.realtime import _eager
from plugins.realtime._wire import Wire
from plugins.realtime.feed import Feed, Gap, parse_id
from plugins.realtime.hub import Hub, LiveMessage, behind

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar import WebSocket

    from core import Tenant
    from plugins.realtime.config import RealtimeSettings
    from plugins.realtime.tickets import Ticket

__all__ = ["IDLE_CLOSE_CODE", "SERVER_ERROR_CLOSE_CODE", "SESSION_ENDED_CLOSE_CODE", "Session"]

log = structlog.get_logger("tenantry.realtime")

IDLE_CLOSE_CODE = 4408
"""Close code for a client silent for two ping intervals."""

SERVER_ERROR_CLOSE_CODE = 1011
"""Close code when the server cannot go on (Redis unreachable): reconnect with the cursors."""

SESSION_ENDED_CLOSE_CODE = 4401
"""Close code when the staff page's web session that got the ticket expired or signed out."""

_CATCH_UP_BATCH = 500
_NOTED = 8
"""Live messages kept for a topic being read; one more and it is read again."""
_READ_ATTEMPTS = 6
"""Attempts of one stream read: after 0.1, 0.2, 0.4, 0.8 and 1.6 s of backoff (3.1 s) it fails."""

_GONE = (WebSocketDisconnect, OSError, RuntimeError)
"""What sending to a socket the client closed raises (Litestar, uvicorn's ClientDisconnected)."""


def _text(frame: str) -> dict[str, Any]:
    return {"type": "websocket.send", "text": frame}


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
        # Litestar's send (it refuses a closed socket), given the ASGI messages the hub built.
        self._send = socket.send
        # The server's connection, when event frames can be written to it as they are (._wire).
        self._wire = Wire.of(socket.scope)
        self._tenant = tenant
        self._settings = settings
        self._ticket = ticket
        self._all_topics = set(all_topics)
        self._feed = Feed(tenant, settings.history_count, settings.history_seconds)
        self._hub = Hub.of(tenant.plain_redis)
        self._outbox: deque[dict[str, Any]] = deque()
        self._room = settings.queue_size
        self._cursors: dict[str, str | None] = {}  # None: the subscription is being set up
        self._behind: set[str] = set()
        # Behind topics: the live messages that came during a read (a few), or
        # dirty when more came or anything may have been missed.
        self._noted: dict[str, list[tuple[LiveMessage, dict[str, Any]]]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        # A send in progress (the writer's, or one that had to wait): the next messages queue.
        self._sending: asyncio.Future[None] | None = None
        self._writing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._gone = False  # the client went away: nothing more is sent

    async def run(self) -> None:
        """Read the client's messages, send frames, ping; return when the connection is over."""
        tasks = [
            asyncio.create_task(self._read(), name="realtime-read"),
            asyncio.create_task(self._write(), name="realtime-write"),
            asyncio.create_task(self._keep_alive(), name="realtime-ping"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    log.warning("realtime_connection_failed", tenant=self._tenant.id,
                                who=self._ticket.who, task=task.get_name(),
                                error=f"{type(error).__name__}: {error}")  # fmt: skip
                    await self._close(SERVER_ERROR_CLOSE_CODE, "server error, reconnect")
                    break
        finally:
            self._gone = True
            if self._sending is not None:
                self._sending.cancel()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for topic in self._cursors:
                with contextlib.suppress(Exception):
                    await self._hub.unfollow(topic, self._feed, self)

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
        # Behind while being set up: what arrives live meanwhile is noted and read after the cursor.
        self._behind.add(topic)
        self._noted.pop(topic, None)
        self._dirty.discard(topic)
        first = topic not in self._cursors
        self._cursors[topic] = None
        if first:
            # Live first, then the cursor: nothing published in between is lost.
            await self._hub.follow(topic, self._feed, self)
        start = str(cursor) if cursor is not None else await self._stream(self._feed.last_id, topic)
        self._cursors[topic] = start
        self._control({"type": "subscribed", "topic": topic, "cursor": start})
        if cursor is None and topic not in self._noted and topic not in self._dirty:
            self._behind.discard(topic)
        self._wake.set()

    # ------------------------------------------------------------ from the hub

    def on_live(self, topic: str, live: LiveMessage, message: dict[str, Any]) -> None:
        """A live entry of ``topic`` (called by the hub, once per connection and entry)."""
        if topic in self._behind:
            noted = self._noted.setdefault(topic, [])
            if len(noted) < _NOTED:
                noted.append((live, message))
            else:
                self._dirty.add(topic)
            return
        cursor = self._cursors.get(topic)
        if cursor is None:
            return
        if live.prev == cursor:
            self._offer(topic, live.id, message, len(live.frame))
        elif behind(cursor, live.id):  # an entry before this one never came: read them
            self._fall_behind(topic)

    def heal(self, topic: str, newest: str | None) -> None:
        """Read ``topic``'s stream if ``newest`` (None: anything) may have been missed."""
        cursor = self._cursors.get(topic)
        if topic in self._behind:
            if newest is None:
                self._dirty.add(topic)
        elif cursor is not None and (newest is None or behind(cursor, newest)):
            self._fall_behind(topic)

    # ------------------------------------------------------------ the outbox

    def _fall_behind(self, topic: str) -> None:
        self._behind.add(topic)
        self._wake.set()

    def _control(self, frame: dict[str, Any]) -> None:
        """Queue a control frame; dropped when the outbox is full (the client is far behind)."""
        if len(self._outbox) < self._room:
            self._outbox.append(_text(msgspec.json.encode(frame).decode()))
            self._wake.set()

    def _offer(self, topic: str, entry_id: str, message: dict[str, Any], size: int) -> bool:
        """Send or queue the message of the entry after ``topic``'s cursor; False (behind) when it does not fit."""
        if size > self._settings.max_message_bytes:
            reason = "an event was larger than max_message_bytes"
            message = _text(msgspec.json.encode({"type": "reset", "topic": topic, "reason": reason}).decode())  # fmt: skip
        if not self._outbox and self._sending is None and not self._gone:
            self._cursors[topic] = entry_id
            if self._wire is None or not self._wire.write(message):
                self._send_now(message)
            return True
        if len(self._outbox) >= self._room:
            self._fall_behind(topic)
            return False
        self._outbox.append(message)
        self._cursors[topic] = entry_id
        self._wake.set()
        return True

    def _send_now(self, message: dict[str, Any]) -> None:
        """Send ``message`` in the caller as far as it goes without waiting (:mod:`._eager`)."""
        try:
            pending = _eager.start(self._send(message))
        except _GONE:
            self._gone = True
            self._wake.set()
            return
        if pending is not None:
            self._sending = pending
            pending.add_done_callback(self._sent)

    def _sent(self, pending: asyncio.Future[None]) -> None:
        self._sending = None
        error = None if pending.cancelled() else pending.exception()
        if pending.cancelled() or error is not None:
            self._gone = True
        if error is not None and not isinstance(error, _GONE):
            log.warning("realtime_send_failed", tenant=self._tenant.id, who=self._ticket.who,
                        error=f"{type(error).__name__}: {error}")  # fmt: skip
        self._wake.set()

    async def _write(self) -> None:
        """Send what waits in the outbox, one message at a time, and read the topics behind."""
        while not self._gone:
            if self._sending is not None:
                await asyncio.wait((self._sending,))
            elif self._outbox:
                self._sending = self._writing
                try:
                    await self._send(self._outbox.popleft())
                except _GONE:
                    return
                finally:
                    self._sending = None
            elif ready := [t for t in self._behind if self._cursors.get(t) is not None]:
                for topic in ready:
                    await self._catch_up(topic)
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _catch_up(self, topic: str) -> None:
        """Queue what follows ``topic``'s cursor from the stream, as far as the outbox allows.

        The topic goes live again once a read found no more and the live
        messages that came during it follow on from what was read.
        """
        while True:
            room = self._room - len(self._outbox)
            cursor = self._cursors.get(topic)
            if room <= 0 or cursor is None:
                return  # the writer comes back once the outbox drained / the subscription is set
            self._noted.pop(topic, None)
            self._dirty.discard(topic)
            limit = min(room, _CATCH_UP_BATCH)
            try:
                entries = await self._stream(self._feed.after, topic, cursor, limit)
            except Gap as gap:
                if self._cursors.get(topic) == cursor:
                    self._cursors[topic] = await self._stream(self._feed.last_id, topic)
                    self._control({"type": "reset", "topic": topic, "reason": str(gap)})
                continue
            if self._cursors.get(topic) != cursor:
                continue  # the client subscribed again meanwhile: read after its new cursor
            for entry in entries:
                if not self._offer(topic, entry.id, _text(entry.frame), len(entry.frame)):
                    return
            if len(entries) == limit or topic in self._dirty:
                continue
            if self._follow_on(topic):
                self._behind.discard(topic)
                return

    def _follow_on(self, topic: str) -> bool:
        """Queue the live messages noted during a read that follow it; False if one does not."""
        for live, message in self._noted.pop(topic, ()):
            cursor = self._cursors[topic]
            if cursor is None or not behind(cursor, live.id):
                continue  # the read had it
            if live.prev != cursor or not self._offer(topic, live.id, message, len(live.frame)):
                return False
        return True

    async def _stream(self, read: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await read(*args)`` within the runtime's bound of stream reads, retried with backoff.

        Raises:
            Gap: as ``read`` does (not retried).
            RedisError | OSError: the last attempt's error.
        """
        for attempt in range(_READ_ATTEMPTS):
            try:
                async with self._hub.reads:
                    return await read(*args)
            except (RedisError, OSError) as exc:
                if attempt == _READ_ATTEMPTS - 1:
                    raise
                log.info("realtime_read_retry", tenant=self._tenant.id, attempt=attempt + 1,
                         error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def _keep_alive(self) -> None:
        """Ping every interval (the first one at a random point of the first interval)."""
        # Connections opened together (a runtime restart) are not all pinged at one instant.
        await asyncio.sleep(self._settings.ping_seconds * random.uniform(0.5, 1.0))
        while True:
            if self._ticket.session_key and not await self._tenant.redis.exists(
                self._ticket.session_key
            ):
                # The staff page's session expired or signed out: so does its
                # feed (the page's next ticket request sends it to sign-in).
                await self._close(SESSION_ENDED_CLOSE_CODE, "session ended, sign in again")
                return
            self._control({"type": "ping", "at": int(time.time())})
            await asyncio.sleep(self._settings.ping_seconds)
