"""Per-topic history in Redis streams, with a chain that makes every gap visible.

Each topic of a tenant is a stream ``<prefix>realtime:topic:<topic>``; an
entry holds the frame (``f``, JSON without ``type`` and ``id``) and the id of
the entry before it on the topic (``p``). The entry id is the frame's ``id``:
stable and increasing per topic. Because each entry names its predecessor,
a reader holding cursor ``c`` knows without doubt whether the next entry it
sees follows ``c`` (``p == c``), repeats one it has (``id <= c``), or skips
some (otherwise: read them, or ``reset`` if they were trimmed).

Appending is one Lua script: an event id already appended to the topic adds
nothing (the earlier entry is returned), otherwise it reads the last id, ``XADD``\\ s with
``MAXLEN ~ history_count`` and trims entries older than ``history_seconds``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core import Tenant
    from core.events.model import DomainEvent

__all__ = ["Entry", "Feed", "Gap", "id_after", "parse_id"]

_APPEND = """
local seen = redis.call('GET', KEYS[2])
if seen then
  return {seen, '', 0}
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #last > 0 then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'f', ARGV[3], 'p', prev)
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
redis.call('SET', KEYS[2], id, 'EX', ARGV[4])
return {id, prev, 1}
"""


class Entry(msgspec.Struct, frozen=True):
    """One event on a topic.

    Attributes:
        id: the stream entry id (``<ms>-<seq>``).
        prev: the id of the entry before it on the topic (``0-0`` for the first).
        frame: the complete ``event`` frame, JSON text, ready to send.
    """

    id: str
    prev: str
    frame: str


class Gap(Exception):
    """The entries after a cursor are no longer all kept: the client must ``reset``."""


def parse_id(entry_id: str) -> tuple[int, int]:
    """``"1767225600000-3"`` -> ``(1767225600000, 3)``.

    Raises:
        ValueError: not a stream id.
    """
    millis, _, sequence = entry_id.partition("-")
    if not millis.isdigit() or not (sequence or "0").isdigit():
        raise ValueError(f"not an event id: {entry_id!r}")
    return int(millis), int(sequence or 0)


def id_after(a: str, b: str) -> bool:
    """True when stream id ``a`` comes after ``b``."""
    return parse_id(a) > parse_id(b)


def _frame(entry_id: str, stored: str) -> str:
    # The stored JSON starts with "{"; the id and type go in front without re-encoding.
    return f'{{"type":"event","id":"{entry_id}",{stored[1:]}'


class Feed:
    """The topic streams of one tenant.

    Args:
        tenant: the tenant (its Redis client and prefix).
        history_count: entries kept per topic (approximately, ``MAXLEN ~``).
        history_seconds: entries older than this are trimmed.
    """

    def __init__(self, tenant: Tenant, history_count: int, history_seconds: int):
        self._redis: Redis = tenant.redis
        self._prefix = tenant.redis_prefix
        self._history_count = history_count
        self._history_seconds = history_seconds
        self._append = self._redis.register_script(_APPEND)

    def key(self, topic: str) -> str:
        """The stream of ``topic``."""
        return f"{self._prefix}realtime:topic:{topic}"

    def channel(self, topic: str) -> str:
        """The Redis pub/sub channel of ``topic`` (carries the tenant prefix)."""
        return f"{self._prefix}realtime:live:{topic}"

    async def append(self, topic: str, event: DomainEvent) -> tuple[Entry, bool] | None:
        """Append ``event`` to ``topic``, once however often it is delivered.

        Returns:
            ``(entry, True)`` for a new entry; ``(entry, False)`` when this event
            was appended before (a redelivery: the runtime may have died before
            pushing it live, so it is pushed again and subscribers skip what
            they have); None when that earlier entry was trimmed meanwhile.
        """
        stored = msgspec.json.encode(
            {
                "topic": topic,
                "event": event.name,
                "event_id": event.id,
                "data": event.payload,
                "occurred_at": event.occurred_at.isoformat(),
            }
        ).decode()
        oldest = f"{int((time.time() - self._history_seconds) * 1000)}-0"
        seen = f"{self.key(topic)}:seen:{event.id}"
        answer = await self._append(
            keys=[self.key(topic), seen],
            args=[self._history_count, oldest, stored, self._history_seconds],
        )
        entry_id, prev, new = answer
        if new:
            return Entry(id=entry_id, prev=prev, frame=_frame(entry_id, stored)), True
        rows = await self._redis.xrange(self.key(topic), min=entry_id, max=entry_id)
        if not rows:
            return None
        _, fields = rows[0]
        return Entry(id=entry_id, prev=fields["p"], frame=_frame(entry_id, fields["f"])), False

    async def last_id(self, topic: str) -> str:
        """The id of the newest entry of ``topic``, ``0-0`` when it has none."""
        newest = await self._redis.xrevrange(self.key(topic), count=1)
        return newest[0][0] if newest else "0-0"

    async def after(self, topic: str, cursor: str, limit: int) -> list[Entry]:
        """Up to ``limit`` entries after ``cursor``, oldest first.

        Raises:
            Gap: entries after ``cursor`` were trimmed (or ``cursor`` was never
                an id of this topic), so what follows it is incomplete.
            ValueError: ``cursor`` is not a stream id.
        """
        parse_id(cursor)
        rows = await self._redis.xrange(self.key(topic), min=f"({cursor}", count=limit)
        if not rows:
            if cursor != "0-0" and id_after(cursor, await self.last_id(topic)):
                raise Gap(f"{cursor} is after the newest event of {topic}")
            return []
        first_id, first = rows[0]
        if first["p"] != cursor:
            raise Gap(f"events between {cursor} and {first_id} are no longer kept")
        return [Entry(id=i, prev=f["p"], frame=_frame(i, f["f"])) for i, f in rows]
