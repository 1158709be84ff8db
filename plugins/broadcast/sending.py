"""One campaign message to one chat, and what Telegram's answer means for the recipient.

The rules follow :mod:`core.kit.telegram` (the kit's ``deliver``), but a
campaign must know *why* a send failed, not only that it did, and retries
through the shared per-bot limiter rather than in place, so the outcome is
returned instead of swallowed:

* sent: the Bot API returned the copy's MessageId (copyMessage) or Message;
* ``blocked``: 403 (bot blocked, user deactivated) or 400 "chat not found":
  the subscriber is unsubscribed with the reason, as the kit marks
  ``users.blocked`` on a 403;
* ``retry_after``: 429, the bot must pause for ``retry_after`` seconds and the
  message is sent again (Telegram did not deliver it);
* ``transient``: a 5xx or network error, retried with backoff;
* ``failed``: any other 400 (message too long, a file_id of another bot...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

if TYPE_CHECKING:
    from aiogram import Bot

__all__ = ["Outcome", "send_content", "unsubscribe_markup"]

UNSUBSCRIBE_CALLBACK = "bc:unsub"
"""Callback data of the "Unsubscribe" button under campaign messages."""


class Outcome(msgspec.Struct, frozen=True):
    """What one send came to.

    Attributes:
        kind: ``sent``, ``blocked``, ``retry_after``, ``transient`` or ``failed``.
        message_id: the first message id of the copy, when sent.
        error_code: Bot API error_code (HTTP status) of a failure; None for
            network errors.
        error: Telegram's description, or the network error's text.
        retry_after: seconds to pause the bot (``retry_after``).
        reason: ``blocked`` or ``chat_not_found``, why a blocked recipient left.
    """

    kind: str
    message_id: int | None = None
    error_code: int | None = None
    error: str = ""
    retry_after: float = 0.0
    reason: str = ""


def unsubscribe_markup(label: str) -> Any:
    """An inline keyboard with one "Unsubscribe" button (callback ``bc:unsub``)."""
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=label, callback_data=UNSUBSCRIBE_CALLBACK)]]
    )


async def _call(bot: Bot, chat_id: int, content: dict[str, Any], extra: dict[str, Any]) -> int:
    kind = content["kind"]
    caption = {"caption": content.get("caption"), "parse_mode": content.get("parse_mode")}
    if kind == "copy":
        message_ids = content["message_ids"]
        if (
            len(message_ids) > 1
        ):  # an album: Bot API copyMessages keeps the grouping, takes no buttons
            extra = {k: v for k, v in extra.items() if k != "reply_markup"}
            copies = await bot.copy_messages(chat_id, content["from_chat_id"], message_ids, **extra)
            return copies[0].message_id
        copy = await bot.copy_message(chat_id, content["from_chat_id"], message_ids[0], **extra)
        return copy.message_id
    if kind == "text":
        sent = await bot.send_message(
            chat_id, content["text"], parse_mode=content.get("parse_mode"), **extra
        )
    elif kind == "photo":
        sent = await bot.send_photo(chat_id, content["media"], **caption, **extra)
    elif kind == "video":
        sent = await bot.send_video(chat_id, content["media"], **caption, **extra)
    elif kind == "document":
        sent = await bot.send_document(chat_id, content["media"], **caption, **extra)
    else:
        raise ValueError(f"unknown content kind {kind!r}")
    return sent.message_id


async def send_content(
    bot: Bot,
    chat_id: int,
    content: dict[str, Any],
    *,
    reply_markup: Any = None,
    allow_paid_broadcast: bool = False,
) -> Outcome:
    """Send a campaign's ``content`` to ``chat_id`` once and classify the answer.

    Args:
        bot: the tenant's bot.
        chat_id: the recipient (a private chat: the user id).
        content: the campaign content (``plugins.broadcast.campaigns``):
            ``{"kind": "copy", "from_chat_id", "message_ids"}``, ``{"kind":
            "text", "text", "parse_mode"}`` or ``{"kind": "photo"|"video"|
            "document", "media" (URL or file_id), "caption", "parse_mode"}``.
        reply_markup: buttons under the message (the unsubscribe button).
        allow_paid_broadcast: Bot API ``allow_paid_broadcast``.

    Returns:
        The :class:`Outcome`; never raises for a Bot API answer.
    """
    extra: dict[str, Any] = {}
    if reply_markup is not None:
        extra["reply_markup"] = reply_markup
    if allow_paid_broadcast:
        extra["allow_paid_broadcast"] = True
    try:
        message_id = await _call(bot, chat_id, content, extra)
    except TelegramRetryAfter as exc:
        return Outcome(
            "retry_after", error_code=429, error=exc.message, retry_after=exc.retry_after
        )
    except TelegramForbiddenError as exc:
        return Outcome("blocked", error_code=403, error=exc.message, reason="blocked")
    except TelegramServerError as exc:
        return Outcome("transient", error_code=500, error=exc.message)
    except TelegramNetworkError as exc:
        return Outcome("transient", error=str(exc))
    except TelegramBadRequest as exc:
        if "chat not found" in exc.message.lower():
            return Outcome("blocked", error_code=400, error=exc.message, reason="chat_not_found")
        return Outcome("failed", error_code=400, error=exc.message)
    except TelegramAPIError as exc:
        return Outcome("failed", error_code=getattr(exc, "error_code", None), error=exc.message)
    return Outcome("sent", message_id=message_id)
