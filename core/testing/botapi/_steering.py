"""How tests steer the stand-in: failures, outages, flood limits, queued updates, chat members."""

from __future__ import annotations

import time
from typing import Any, Literal

from core.testing.botapi._state import DEFAULT_DESCRIPTIONS, StandInState, TelegramError

__all__ = ["RATE_LIMITED_METHODS", "Steering"]

RATE_LIMITED_METHODS = frozenset({
    "sendmessage", "sendphoto", "sendvideo", "senddocument", "sendaudio", "sendanimation",
    "sendvoice", "sendmediagroup", "sendlocation", "sendcontact", "sendpoll", "sendsticker",
    "copymessage", "copymessages", "forwardmessage", "forwardmessages",
})  # fmt: skip
"""Lower-cased methods that send a message and count toward :meth:`BotAPIStandIn.set_rate_limit`."""


class Steering(StandInState):
    """The stand-in's steering methods: what the next answers are, and what a bot's state is."""

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 400,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (any bot) answer with a Telegram error.

        Args:
            method: Method name, case-insensitive.
            error_code: Telegram error code, also used as HTTP status (400, 403, 429, 500...).
            description: Error text; a Telegram-like default for the code when None.
            retry_after: Seconds for ``parameters.retry_after``; defaults to 1 for 429, which
                Telegram always sends with it.
            times: Number of calls to fail.
            chat_id: Fail only calls to this chat (compared as text, as in :meth:`calls`),
                e.g. 403 for the one user who blocked the bot; None fails calls to any chat.
        """
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = DEFAULT_DESCRIPTIONS.get(error_code, "Error")
        chat = None if chat_id is None else str(chat_id)
        self._failures[method.lower()].extend(
            [(chat, TelegramError(error_code, description, retry_after))] * times
        )

    def set_unavailable(
        self, unavailable: bool = True, *, how: Literal["disconnect", "bad_gateway"] = "disconnect"
    ) -> None:
        """Simulate Telegram being down, for every Bot API and file request.

        Args:
            unavailable: True to go down, False to come back.
            how: "disconnect" closes each connection without an answer (aiogram raises
                TelegramNetworkError); "bad_gateway" answers 502 "Bad Gateway" (aiogram raises
                TelegramServerError).
        """
        self._unavailable = how if unavailable else None

    def set_rate_limit(
        self, per_second: float | None, *, bot_id: int | None = None, retry_after: int = 1
    ) -> None:
        """Enforce Telegram's per-bot flood limit on message-sending methods, like Telegram.

        Each bot gets a token bucket of ``per_second`` messages that refills at
        ``per_second`` a second (a burst of one second's budget, then the
        rate); a send with the bucket empty is answered 429 "Too Many
        Requests: retry after N" with ``parameters.retry_after``. Methods that
        send (:data:`RATE_LIMITED_METHODS`) count; edits, answers and getters do not.

        Args:
            per_second: messages per second per bot; None removes the limit.
            bot_id: limit only this bot; None every bot without a limit of its own.
            retry_after: seconds in the 429 answers.
        """
        if per_second is None:
            self._rate_limits.pop(bot_id, None)
        else:
            self._rate_limits[bot_id] = (float(per_second), retry_after)

    def _check_rate(self, bot_id: int, method: str) -> None:
        limit = self._rate_limits.get(bot_id) or self._rate_limits.get(None)
        if limit is None or method not in RATE_LIMITED_METHODS:
            return
        per_second, retry_after = limit
        now = time.monotonic()
        tokens, at = self._buckets.get(bot_id, (per_second, now))
        tokens = min(per_second, tokens + (now - at) * per_second)
        if tokens < 1:
            self._buckets[bot_id] = (tokens, now)
            raise TelegramError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._buckets[bot_id] = (tokens - 1, now)

    def enqueue_update(self, bot_id: int, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for a bot's getUpdates.

        Args:
            bot_id: Receiving bot.
            update: Update dict as Telegram sends it; an ``update_id`` one above the queue's
                last is added when missing.

        Returns:
            The queued update.
        """
        queue = self._updates[bot_id]
        if "update_id" not in update:
            update = {"update_id": (queue[-1]["update_id"] + 1) if queue else 1, **update}
        queue.append(update)
        self._notify()
        return update

    def set_chat_member(
        self, chat_id: int, user_id: int, status: str = "member", **fields: Any
    ) -> None:
        """Set what getChatMember answers for a user in a chat (default "member").

        Args:
            chat_id: Chat id.
            user_id: User id.
            status: ChatMember status; see ``core.testing.updates.chat_member``.
            **fields: Extra ChatMember fields ("administrator" and "restricted" need theirs).
        """
        self._members[(chat_id, user_id)] = {"status": status, **fields}

    def webhook(self, bot_id: int) -> dict[str, Any] | None:
        """Return the parameters of a bot's last setWebhook, or None when it has no webhook.

        Args:
            bot_id: The bot.

        Returns:
            The setWebhook params (url, secret_token, allowed_updates...) or None.
        """
        return self._webhooks.get(bot_id)
