"""Safe Bot API sends: one place that handles blocked users, flood limits and network errors.

Notifications run after the change that caused them committed (event
subscribers, jobs), so a failed send must never undo anything or stop the
next recipient. :func:`deliver` turns each Bot API outcome into a decision:

* 403 Forbidden (the user blocked the bot, Bot API error_code 403): the user
  is marked ``blocked`` in the core ``users`` table (broadcasts skip them; a
  later ``/start`` clears it) and the send is dropped;
* 429 Too Many Requests (``TelegramRetryAfter``, Bot API
  ``ResponseParameters.retry_after``): wait that many seconds and try again,
  at most ``attempts`` times in all and never longer than ``max_wait`` seconds
  per wait;
* a network error or a Telegram 5xx: try again after 0.5 s, 1 s... up to
  ``attempts`` times;
* any other Bot API error (400 chat not found, message too long): dropped.

Each outcome is logged once, with the tenant, chat and method, without a
traceback; the send returns None when it did not happen.

Every attempt first takes a slot of the bot's send budget, shared with
broadcasts and registration calls on every runtime
(:class:`core.updates.limiter.BotLimiter`, 30 per second; a notice goes ahead
of campaign messages not yet reserved), and a slot of the chat's own budget
of one message per second (Bot API FAQ: "avoid sending more than one message
per second" in a single chat). A 429 pauses every send to that chat for its
``retry_after``. While Redis is unreachable, sends go unpaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from core.errors import STORAGE_UNAVAILABLE
from core.updates.limiter import TELEGRAM_BOT_RATE, BotLimiter, bot_rate_key

if TYPE_CHECKING:
    from aiogram.types import Message

    from core.runtime.tenant import Tenant

__all__ = ["DEFAULT_ATTEMPTS", "MAX_RETRY_WAIT", "deliver", "edit_message_text", "send_message"]

T = TypeVar("T")

DEFAULT_ATTEMPTS = 3
"""Calls made at most for one send (the first and two retries)."""
MAX_RETRY_WAIT = 30.0
"""Longest ``retry_after`` waited for, seconds; a longer flood wait drops the send."""
NETWORK_BACKOFF = 0.5
"""Seconds before the first retry after a network error or Telegram 5xx (then doubled)."""
CHAT_RATE = 1.0
"""Messages per second to one chat (Bot API FAQ, "My bot is hitting limits")."""

_MARK_BLOCKED = "UPDATE users SET blocked = true WHERE telegram_id = $1"


async def deliver(
    tenant: Tenant,
    chat_id: int | str,
    call: Callable[[], Awaitable[T]],
    *,
    method: str,
    attempts: int = DEFAULT_ATTEMPTS,
    max_wait: float = MAX_RETRY_WAIT,
) -> T | None:
    """Make one Bot API call to ``chat_id`` with the rules of this module.

    Args:
        tenant: the tenant whose bot sends.
        chat_id: the chat the call is about (a user id for private chats).
        call: makes the call, e.g. ``lambda: tenant.bot.send_photo(chat_id, photo)``;
            called once per attempt.
        method: Bot API method name, for the log.
        attempts: calls made at most (at least 1).
        max_wait: longest ``retry_after`` waited for, seconds.

    Returns:
        What the call returned, or None when it did not succeed.
    """
    where = {"chat_id": chat_id, "method": method}
    bot = BotLimiter(tenant.redis, bot_rate_key(tenant), TELEGRAM_BOT_RATE)
    chat = BotLimiter(
        tenant.redis, tenant.key("chat-rate", tenant.config.bot.bot_id, chat_id), CHAT_RATE
    )
    for attempt in range(1, max(1, attempts) + 1):
        last = attempt >= attempts
        try:
            await _pace(tenant, bot, chat, chat_id)
            return await call()
        except TelegramRetryAfter as exc:
            # Every sender to this chat, on every runtime, holds for retry_after; the
            # next attempt's slot is after it. (Which limit was hit, the chat's or the
            # bot's, Telegram does not say; broadcasts pause the whole bot.)
            paused = True
            try:
                await chat.pause(exc.retry_after)
            except STORAGE_UNAVAILABLE:
                paused = False
            if last or exc.retry_after > max_wait:
                tenant.log.warning(
                    "bot_send_dropped", reason="flood", retry_after=exc.retry_after, **where
                )
                return None
            tenant.log.info("bot_send_throttled", retry_after=exc.retry_after, **where)
            if not paused:
                await asyncio.sleep(exc.retry_after)
        except TelegramForbiddenError as exc:
            tenant.log.info("bot_blocked_by_user", error=exc.message, **where)
            await _mark_blocked(tenant, chat_id)
            return None
        except (TelegramNetworkError, TelegramServerError) as exc:
            if last:
                tenant.log.warning(
                    "bot_send_dropped", reason="unreachable", error=str(exc), **where
                )
                return None
            tenant.log.info("bot_send_retried", error=str(exc), attempt=attempt, **where)
            await asyncio.sleep(NETWORK_BACKOFF * 2 ** (attempt - 1))
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return None  # Bot API: an edit to the same text and buttons; nothing to do
            tenant.log.warning("bot_send_dropped", reason="refused", error=exc.message, **where)
            return None
        except TelegramAPIError as exc:
            tenant.log.warning("bot_send_dropped", reason="refused", error=exc.message, **where)
            return None
    return None


async def _pace(tenant: Tenant, bot: BotLimiter, chat: BotLimiter, chat_id: int | str) -> None:
    """Wait for a slot of the chat's budget, then of the bot's; unpaced while Redis is down."""
    try:
        await chat.acquire(notice=True)
        await bot.acquire(notice=True)
    except STORAGE_UNAVAILABLE as exc:
        tenant.log.info("bot_send_unpaced", chat_id=chat_id, error=str(exc))


async def _mark_blocked(tenant: Tenant, chat_id: int | str) -> None:
    # Only private chats are users: a group's id is negative, a channel's a "@name".
    if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id <= 0:
        return
    try:
        await tenant.db.execute(_MARK_BLOCKED, chat_id)
    except (*STORAGE_UNAVAILABLE, asyncpg.PostgresError) as exc:
        tenant.log.warning("user_block_not_recorded", chat_id=chat_id, error=str(exc))


async def send_message(
    tenant: Tenant,
    chat_id: int | str,
    text: str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    max_wait: float = MAX_RETRY_WAIT,
    **kwargs: Any,
) -> Message | None:
    """``sendMessage`` through :func:`deliver`.

    Args:
        tenant: the tenant whose bot sends.
        chat_id: the chat.
        text: 1-4096 characters (Bot API, sendMessage.text).
        attempts: calls made at most.
        max_wait: longest ``retry_after`` waited for, seconds.
        **kwargs: other ``Bot.send_message`` parameters (``reply_markup``, ``parse_mode``).

    Returns:
        The sent Message, or None when it was not sent.
    """
    return await deliver(
        tenant,
        chat_id,
        lambda: tenant.bot.send_message(chat_id, text, **kwargs),
        method="sendMessage",
        attempts=attempts,
        max_wait=max_wait,
    )


async def edit_message_text(
    tenant: Tenant,
    chat_id: int | str,
    message_id: int,
    text: str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    max_wait: float = MAX_RETRY_WAIT,
    **kwargs: Any,
) -> Message | bool | None:
    """``editMessageText`` of a message the bot sent, through :func:`deliver`.

    Returns:
        The edited Message, or None when it was not edited (also when the
        text and buttons were already the same).
    """
    return await deliver(
        tenant,
        chat_id,
        lambda: tenant.bot.edit_message_text(
            text=text, chat_id=chat_id, message_id=message_id, **kwargs
        ),
        method="editMessageText",
        attempts=attempts,
        max_wait=max_wait,
    )
