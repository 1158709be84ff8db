"""The per-bot send limiter, shared by every runtime through Redis.

Every sender of a bot shares one budget: broadcast campaigns, notices and
the core's own Bot API registration calls (setWebhook, setMyCommands) reserve
their slots under the same key, :func:`bot_rate_key`.

Telegram counts a bot's messages per second whichever process sends them, so
the budget lives in Redis under the tenant's prefix, one key per bot id. It is
a GCRA (generic cell rate algorithm, the "virtual scheduling" form of ITU-T
I.371): the key holds the theoretical arrival time (TAT) of the next message,
and each send reserves the slot ``max(TAT, now)`` and moves TAT one interval
(``1 / rate`` seconds) on. Sends are thus spaced evenly at exactly the rate,
with no burst at a window's start, which is what Telegram's "about 30 per
second" tolerates. The ``limits`` library answers only "allowed now?" per
fixed or moving window, which would send each second's budget in one burst
and gives no reservation to wait for; one Lua script does both here.

Priority: a campaign sender reserves only when the next slot is at most
``CAMPAIGN_LOOKAHEAD`` intervals ahead, so campaigns never queue far into the
future; a notice (a reminder, an order update) reserves whatever the queue,
and so goes out before campaign messages that have not reserved yet.

A 429 answer moves TAT to ``now + retry_after`` for that bot only, and sets a
pause key that senders already holding a slot check before they send; other
bots (other tenants) have other keys and keep their rate.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.runtime.tenant import Tenant

__all__ = ["CAMPAIGN_LOOKAHEAD", "TELEGRAM_BOT_RATE", "BotLimiter", "bot_rate_key"]

TELEGRAM_BOT_RATE = 30.0
"""Messages per second Telegram lets one bot send in total (Bot API FAQ,
"My bot is hitting limits": "no more than 30 messages per second")."""

CAMPAIGN_LOOKAHEAD = 2
"""Intervals ahead of now up to which a campaign send may reserve its slot."""

# KEYS[1] TAT key. ARGV[1] interval (microseconds), ARGV[2] most microseconds
# ahead a reservation may be. Returns {reserved (1/0), microseconds to wait}.
_RESERVE = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_us then tat = now_us end
local wait = tat - now_us
if wait > tonumber(ARGV[2]) then
  return {0, wait - tonumber(ARGV[2])}
end
local next_tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now_us) / 1000) + 60000)
return {1, wait}
"""

# KEYS[1] TAT key, KEYS[2] pause key. ARGV[1] pause (microseconds). TAT only
# moves forward; the pause key tells senders holding an earlier slot to wait too.
_PAUSE = """
local now = redis.call('TIME')
local until_us = tonumber(now[1]) * 1000000 + tonumber(now[2]) + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > tat then
  redis.call('SET', KEYS[1], string.format('%.0f', until_us), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 60000)
end
local pause_ms = math.ceil(tonumber(ARGV[1]) / 1000)
if pause_ms > redis.call('PTTL', KEYS[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', pause_ms)
end
return 1
"""


_SCRIPTS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()
"""Per Redis client: its registered reserve and pause scripts (a sender builds a limiter per send)."""


def _scripts(redis: Redis) -> tuple[Any, Any]:
    scripts = _SCRIPTS.get(redis)
    if scripts is None:
        scripts = _SCRIPTS[redis] = (redis.register_script(_RESERVE), redis.register_script(_PAUSE))
    return scripts


def bot_rate_key(tenant: Tenant) -> str:
    """The Redis key of the tenant's current bot's send budget (one per bot id)."""
    return tenant.key("bot-rate", tenant.config.bot.bot_id)


class BotLimiter:
    """Reservations of send slots for one bot at ``rate`` messages per second.

    Args:
        redis: the shared Redis client.
        key: the bot's TAT key, :func:`bot_rate_key`.
        rate: messages per second (1-1000).
    """

    def __init__(self, redis: Redis, key: str, rate: float):
        self.redis = redis
        self.key = key
        self.pause_key = f"{key}:paused"
        self.rate = rate
        self.interval_us = int(1_000_000 / rate)
        self._reserve, self._pause = _scripts(redis)

    async def acquire(self, *, notice: bool = False) -> None:
        """Wait for this caller's slot: return when the message may be sent.

        Args:
            notice: a transactional notice, which may reserve however far the
                queue reaches (priority over campaign messages).
        """
        ahead = 3600 * 1_000_000 if notice else CAMPAIGN_LOOKAHEAD * self.interval_us
        while True:
            reserved, wait_us = await self._reserve(keys=[self.key], args=[self.interval_us, ahead])
            if int(reserved):
                if int(wait_us) > 0:
                    await asyncio.sleep(int(wait_us) / 1_000_000)
                # A 429 that came while this slot was waiting holds it too.
                paused_ms = await self.redis.pttl(self.pause_key)
                if paused_ms is None or int(paused_ms) <= 0:
                    return
                await asyncio.sleep(int(paused_ms) / 1000)
                continue
            await asyncio.sleep(max(int(wait_us), self.interval_us) / 1_000_000)

    async def pause(self, seconds: float) -> None:
        """Hold every sender of this bot, on every runtime, for ``seconds`` (a 429's retry_after)."""
        await self._pause(keys=[self.key, self.pause_key], args=[int(seconds * 1_000_000)])
