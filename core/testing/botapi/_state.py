"""What the stand-in keeps: recorded calls, per-bot state, Telegram errors and chats."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import zlib
from collections import defaultdict
from typing import Any, Literal

import msgspec
from aiohttp import web

__all__ = [
    "DEFAULT_DESCRIPTIONS",
    "NOT_FOUND",
    "RecordedCall",
    "StandInState",
    "TelegramError",
    "UploadedFile",
    "resolve_chat",
    "short_repr",
]


class UploadedFile(msgspec.Struct, frozen=True):
    """A file sent in a multipart request, as recorded in ``RecordedCall.params``.

    Attributes:
        filename: Name the client gave the file part.
        content_type: MIME type of the part.
        content: Raw bytes (base64 in ``GET /_calls``).
    """

    filename: str
    content_type: str
    content: bytes


class RecordedCall(msgspec.Struct):
    """One Bot API method call received by the stand-in.

    Attributes:
        token: Bot token from the URL.
        bot_id: Digits before ":" in the token.
        method: Method name as sent, e.g. "sendMessage" (Telegram ignores its case).
        params: Parameters from the query string and body; JSON-encoded fields such as
            reply_markup are decoded, ``attach://name`` references and file parts are
            ``UploadedFile`` objects.
        at: When the request arrived, UTC unix seconds.
        error_code: Telegram error code of the answer, None when it succeeded.
    """

    token: str
    bot_id: int
    method: str
    params: dict[str, Any]
    at: float
    error_code: int | None = None


class TelegramError(Exception):
    """An error answer: HTTP status and ``error_code`` are the same number, as on Telegram."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.error_code)


DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
NOT_FOUND = TelegramError(404, "Not Found")


class StandInState:
    """The state of a stand-in, shared by its method handlers, and the recorded calls.

    Each distinct bot id gets its own chats, message ids, webhook, commands and
    update queue; :class:`~core.testing.botapi.BotAPIStandIn` adds the HTTP server.
    """

    def __init__(self) -> None:
        self._calls: list[RecordedCall] = []
        # method -> [(chat id as text or None for any chat, error)], consumed in order.
        self._failures: defaultdict[str, list[tuple[str | None, TelegramError]]] = defaultdict(list)
        self._unavailable: Literal["disconnect", "bad_gateway"] | None = None
        self._updates: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        self._poll_generation: defaultdict[int, int] = defaultdict(int)
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._commands: dict[tuple[int, str, str], list[Any]] = {}
        self._last_message_id: defaultdict[tuple[int, int], int] = defaultdict(int)
        self._messages: dict[tuple[int, int, int], dict[str, Any]] = {}
        self._members: dict[tuple[int, int], dict[str, Any]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._file_contents: dict[str, bytes] = {}
        # bot id (None: every bot) -> (messages per second, retry_after) and each bot's bucket.
        self._rate_limits: dict[int | None, tuple[float, int]] = {}
        self._buckets: dict[int, tuple[float, float]] = {}
        self._wakeup = asyncio.Event()
        self._closing = False

    # ---- recorded calls

    def calls(
        self,
        method: str | None = None,
        bot_id: int | None = None,
        chat_id: int | str | None = None,
    ) -> list[RecordedCall]:
        """Return recorded calls, optionally filtered.

        A call is recorded once it is answered (a long-polling getUpdates when it returns),
        so the list is in answer order; ``RecordedCall.at`` keeps the arrival time.

        Args:
            method: Method name, matched case-insensitively.
            bot_id: Only calls made with this bot's token.
            chat_id: Only calls whose ``chat_id`` parameter equals this (compared as text,
                so 42 matches "42").

        Returns:
            The matching calls.
        """
        return [
            call
            for call in self._calls
            if (method is None or call.method.lower() == method.lower())
            and (bot_id is None or call.bot_id == bot_id)
            and (chat_id is None or str(call.params.get("chat_id")) == str(chat_id))
        ]

    def clear(self) -> None:
        """Forget every recorded call."""
        self._calls.clear()

    async def wait_for(
        self,
        method: str,
        *,
        bot_id: int | None = None,
        chat_id: int | str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[RecordedCall]:
        """Wait until at least ``count`` matching calls are recorded.

        Args:
            method: Method name, matched case-insensitively.
            bot_id: Only calls made with this bot's token.
            chat_id: Only calls to this chat.
            count: How many matching calls to wait for.
            timeout: Seconds to wait.

        Returns:
            All matching calls (``count`` or more).

        Raises:
            AssertionError: On timeout, listing the calls that were recorded.
        """
        if await self._wait_until(
            lambda: len(self.calls(method, bot_id=bot_id, chat_id=chat_id)) >= count, timeout
        ):
            return self.calls(method, bot_id=bot_id, chat_id=chat_id)
        found = len(self.calls(method, bot_id=bot_id, chat_id=chat_id))
        recorded = "\n".join(f"  {_describe(call)}" for call in self._calls[-30:]) or "  (none)"
        raise AssertionError(
            f"expected {count} {method} call(s) (bot_id={bot_id}, chat_id={chat_id}) within "
            f"{timeout}s, found {found}; recorded calls (last 30):\n{recorded}"
        )

    # ---- waking and waiting

    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _wait_until(self, predicate: Any, within: float) -> bool:
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
        return True


def resolve_chat(params: dict[str, Any]) -> dict[str, Any]:
    """Build the Chat for ``chat_id``: private when positive, supergroup when negative,
    channel for "@username"."""
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise TelegramError(400, "Bad Request: chat_id is empty")
    if isinstance(chat_id, str) and re.fullmatch(r"@\w{4,32}", chat_id):
        username = chat_id[1:]
        return {
            "id": -1_000_000_000_000 - zlib.crc32(username.lower().encode()),
            "type": "channel",
            "title": username,
            "username": username,
        }
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise TelegramError(400, "Bad Request: chat not found")
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Test"}
    return {"id": chat_id, "type": "supergroup", "title": f"Test group {-chat_id}"}


def short_repr(params: dict[str, Any], limit: int = 160) -> str:
    """``repr(params)`` cut to at most ``limit`` characters, for log lines and failure messages."""
    text = repr(params)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(call: RecordedCall) -> str:
    error = f" -> {call.error_code}" if call.error_code else ""
    return f"{call.method} bot_id={call.bot_id} {short_repr(call.params)}{error}"
