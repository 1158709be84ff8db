"""Live fan-out across runtimes: one Litestar Channels plugin per runtime, on the shared Redis.

The realtime plugin's ``on_event`` runs on one runtime per event (the core's
consumer group); it appends the event to the topic's stream and publishes the
entry on the topic's channel, which Channels' Redis pub/sub backend delivers
to every runtime, and each runtime to its own WebSocket subscribers. A lost
pub/sub message costs nothing: subscribers see the gap in the chain of ids
and read the stream (:mod:`plugins.realtime.feed`).

The hub is started by the first tenant with realtime that starts on this
runtime and closed when the last one stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend

if TYPE_CHECKING:
    from litestar.channels import Subscriber
    from redis.asyncio import Redis

    from plugins.realtime.feed import Entry

__all__ = ["Hub", "LiveMessage", "decode_live"]

_HUBS: dict[int, Hub] = {}


class LiveMessage(msgspec.Struct, frozen=True, array_like=True):
    """What the channel carries: the entry id, its predecessor, and the frame."""

    id: str
    prev: str
    frame: str


class Hub:
    """This runtime's Channels plugin for realtime, shared by its tenants.

    Args:
        redis: the runtime's plain Redis client (:attr:`core.runtime.tenant.Tenant.plain_redis`:
            the shared one, or on a Redis Cluster the queue Redis, as Channels needs one server).
        backlog: messages buffered per subscriber before the oldest is dropped
            (a dropped message shows as a gap and is read from the stream).
    """

    def __init__(self, redis: Redis, backlog: int = 1000):
        self._redis = redis
        self._users = 0
        self._lock = asyncio.Lock()
        # Channels' Redis backend reads bytes: a client of the same server
        # without the runtime client's decode_responses.
        shared = redis.connection_pool
        self._raw = redis.__class__(
            connection_pool=shared.__class__(
                connection_class=shared.connection_class,
                **{**shared.connection_kwargs, "decode_responses": False},
            )
        )
        self.channels = ChannelsPlugin(
            backend=RedisChannelsPubSubBackend(redis=self._raw, key_prefix="tenantry_realtime"),
            arbitrary_channels_allowed=True,
            subscriber_max_backlog=backlog,
            subscriber_backlog_strategy="dropleft",
        )

    @classmethod
    def of(cls, redis: Redis) -> Hub:
        """The hub of ``redis`` (one per runtime: the runtime has one Redis client)."""
        hub = _HUBS.get(id(redis))
        if hub is None or hub._redis is not redis:
            hub = _HUBS[id(redis)] = cls(redis)
        return hub

    async def acquire(self) -> None:
        """Count a tenant using the hub; the first one starts Channels."""
        async with self._lock:
            if self._users == 0:
                await self.channels.__aenter__()
            self._users += 1

    async def release(self) -> None:
        """Uncount a tenant; the last one stops Channels."""
        async with self._lock:
            self._users -= 1
            if self._users == 0:
                await self.channels.__aexit__(None, None, None)
                await self._raw.aclose()
                _HUBS.pop(id(self._redis), None)

    async def publish(self, channel: str, entry: Entry) -> None:
        """Send ``entry`` to every runtime's subscribers of ``channel``."""
        await self.channels.wait_published(
            msgspec.json.encode(LiveMessage(entry.id, entry.prev, entry.frame)), [channel]
        )

    async def subscribe(self, channel: str) -> Subscriber:
        """A new subscriber of ``channel`` (release it with :meth:`unsubscribe`)."""
        return await self.channels.subscribe([channel])

    async def unsubscribe(self, subscriber: Subscriber) -> None:
        """Release ``subscriber``."""
        with contextlib.suppress(Exception):
            await self.channels.unsubscribe(subscriber)


def decode_live(raw: Any) -> LiveMessage | None:
    """The message a subscriber received, or None when it is not one of ours."""
    try:
        return msgspec.json.decode(raw, type=LiveMessage)
    except (msgspec.DecodeError, TypeError):
        return None
