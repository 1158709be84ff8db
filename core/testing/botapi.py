"""A local stand-in for the Telegram Bot API server, at the HTTP level.

Point aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(stand_in.base_url))``.
It answers ``{base}/bot{token}/{method}`` the way api.telegram.org does, records every call
for assertions, serves uploaded files at ``{base}/file/bot{token}/{file_path}``, and can be
told to fail. Results are realistic enough for aiogram to parse, not a full emulation: text is
echoed as sent, without parse_mode processing.

For humans, ``python -m core.testing.botapi --port 8081`` runs it in the foreground, with
``GET /_calls`` (optional ``?method=``), ``DELETE /_calls`` and ``POST /_updates/{bot_id}``
(one Update JSON, served to that bot's getUpdates).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import re
import time
import zlib
from collections import defaultdict
from typing import Any, Literal, Self

import msgspec
from aiohttp import web

from core.testing.updates import bot_user, chat_member

__all__ = ["BotAPIStandIn", "RecordedCall", "UploadedFile", "main"]

logger = logging.getLogger("tenantry.testing.botapi")

TOKEN_PATTERN = re.compile(r"(\d+):[A-Za-z0-9_-]+")
"""Bot API: a token looks like "123456:ABC-DEF1234ghIkl" (https://core.telegram.org/bots/api#authorizing-your-bot)."""
MESSAGE_TEXT_LIMIT = 4096
"""Bot API: sendMessage.text, 1-4096 characters after entities parsing."""
CAPTION_LIMIT = 1024
"""Bot API: sendPhoto.caption / sendDocument.caption, 0-1024 characters after entities parsing."""
SECRET_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""Bot API: setWebhook.secret_token, 1-256 characters, only A-Z, a-z, 0-9, _ and -."""
GET_UPDATES_LIMIT = 100
"""Bot API: getUpdates.limit, 1-100, default 100."""
UPLOAD_LIMIT = 50 * 1024 * 1024
"""Bot API: bots may upload files of up to 50 MB (bytes) with multipart/form-data."""

# Parameters that are free text or opaque string ids: never JSON-decoded, so that a text "123"
# stays a str. Every other form field is JSON-decoded when it parses, as aiogram JSON-encodes
# ints, bools, lists and objects (reply_markup, entities) but sends str values as they are.
_FREE_TEXT_PARAMS = frozenset({
    "text", "caption", "query", "title", "description", "short_description", "name",
    "first_name", "last_name", "phone_number", "vcard", "address", "question", "explanation",
    "secret_token", "url", "data", "emoji", "payload", "start_parameter", "custom_title",
    "callback_query_id", "inline_query_id", "inline_message_id", "web_app_query_id",
    "shipping_query_id", "pre_checkout_query_id", "business_connection_id",
    "message_effect_id", "file_id", "custom_emoji_id", "ip_address",
})  # fmt: skip


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


class _TelegramError(Exception):
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


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_NOT_FOUND = _TelegramError(404, "Not Found")

RATE_LIMITED_METHODS = frozenset({
    "sendmessage", "sendphoto", "sendvideo", "senddocument", "sendaudio", "sendanimation",
    "sendvoice", "sendmediagroup", "sendlocation", "sendcontact", "sendpoll", "sendsticker",
    "copymessage", "copymessages", "forwardmessage", "forwardmessages",
})  # fmt: skip
"""Lower-cased methods that send a message and count toward :meth:`BotAPIStandIn.set_rate_limit`."""
_NOT_COPIED = ("message_id", "from", "chat", "date", "edit_date", "reply_markup")


class BotAPIStandIn:
    """An in-process HTTP server that answers Bot API requests for any number of bots.

    Any well-formed token is accepted; each distinct bot id gets its own chats, message ids,
    webhook, commands and update queue.
    """

    def __init__(self) -> None:
        self._calls: list[RecordedCall] = []
        # method -> [(chat id as text or None for any chat, error)], consumed in order.
        self._failures: defaultdict[str, list[tuple[str | None, _TelegramError]]] = defaultdict(
            list
        )
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
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ---- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening.

        Args:
            host: Interface to bind.
            port: TCP port; 0 picks a free one (read it back from ``base_url``).
        """
        app = web.Application(
            client_max_size=UPLOAD_LIMIT + 1024 * 1024, middlewares=[self._availability]
        )
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_get("/_calls", self._handle_list_calls)
        app.router.add_delete("/_calls", self._handle_clear_calls)
        app.router.add_post("/_updates/{bot_id:\\d+}", self._handle_enqueue)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown_path)
        self._closing = False
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self._base_url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"

    async def stop(self) -> None:
        """Stop listening; pending long-polling getUpdates calls return at once."""
        self._closing = True
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Root URL to pass to ``TelegramAPIServer.from_base``, e.g. "http://127.0.0.1:8081".

        Raises:
            RuntimeError: When the stand-in is not started.
        """
        if self._base_url is None:
            raise RuntimeError("BotAPIStandIn is not started")
        return self._base_url

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

    # ---- steering

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
                description = _DEFAULT_DESCRIPTIONS.get(error_code, "Error")
        chat = None if chat_id is None else str(chat_id)
        self._failures[method.lower()].extend(
            [(chat, _TelegramError(error_code, description, retry_after))] * times
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
            raise _TelegramError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
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

    # ---- HTTP

    @web.middleware
    async def _availability(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._unavailable is None or request.path.startswith("/_"):
            return await handler(request)
        if self._unavailable == "bad_gateway":
            return _TelegramError(502, "Bad Gateway").response()
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # the connection is gone: nothing to answer

    async def _handle_method(self, request: web.Request) -> web.Response:
        arrived = time.time()
        token, method = request.match_info["token"], request.match_info["method"]
        token_match = TOKEN_PATTERN.fullmatch(token)
        if token_match is None:
            return _NOT_FOUND.response()
        try:
            params = await _read_params(request)
        except ValueError:
            return _TelegramError(400, "Bad Request: can't parse request").response()
        bot_id = int(token_match.group(1))
        call = RecordedCall(token=token, bot_id=bot_id, method=method, params=params, at=arrived)
        try:
            result = await self._answer(bot_id, method.lower(), params)
            response = web.json_response({"ok": True, "result": result})
        except (TypeError, ValueError) as exc:  # e.g. offset="abc"
            call.error_code = 400
            response = _TelegramError(400, f"Bad Request: invalid parameters ({exc})").response()
        except _TelegramError as error:
            call.error_code = error.error_code
            response = error.response()
        self._calls.append(call)
        self._notify()
        logger.info("bot %s %s %s -> %s", bot_id, method, _short(params), call.error_code or "ok")
        return response

    async def _answer(self, bot_id: int, method: str, params: dict[str, Any]) -> Any:
        self._check_rate(bot_id, method)
        failures = self._failures.get(method)
        if failures:
            chat = str(params.get("chat_id"))
            for index, (only_chat, error) in enumerate(failures):
                if only_chat is None or only_chat == chat:
                    del failures[index]
                    raise error
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return True  # answerCallbackQuery, deleteMessage, setChatMenuButton and the rest
        result = handler(bot_id, params)
        return await result if inspect.isawaitable(result) else result

    async def _handle_file(self, request: web.Request) -> web.Response:
        content = self._file_contents.get(request.match_info["file_path"])
        if TOKEN_PATTERN.fullmatch(request.match_info["token"]) is None or content is None:
            return _NOT_FOUND.response()
        return web.Response(body=content)

    async def _handle_list_calls(self, request: web.Request) -> web.Response:
        calls = self.calls(request.query.get("method"))
        return web.Response(body=msgspec.json.encode(calls), content_type="application/json")

    async def _handle_clear_calls(self, request: web.Request) -> web.Response:
        self.clear()
        return web.json_response({"ok": True, "result": True})

    async def _handle_enqueue(self, request: web.Request) -> web.Response:
        update = await request.json()
        if not isinstance(update, dict):
            return _TelegramError(400, "Bad Request: an Update must be a JSON object").response()
        update = self.enqueue_update(int(request.match_info["bot_id"]), update)
        return web.json_response({"ok": True, "result": update})

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        return _NOT_FOUND.response()

    # ---- Bot API methods: _api_<lowercased name>(bot_id, params) -> result

    def _api_getme(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **bot_user(bot_id),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_setwebhook(self, bot_id: int, params: dict[str, Any]) -> bool:
        secret_token = params.get("secret_token")
        if secret_token is not None and not SECRET_TOKEN_PATTERN.fullmatch(str(secret_token)):
            raise _TelegramError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates[bot_id].clear()
        if params.get("url"):
            self._webhooks[bot_id] = dict(params)
        else:  # Bot API: an empty url removes the webhook
            self._webhooks.pop(bot_id, None)
        return True

    def _api_deletewebhook(self, bot_id: int, params: dict[str, Any]) -> bool:
        return self._api_setwebhook(
            bot_id, {"drop_pending_updates": params.get("drop_pending_updates")}
        )

    def _api_getwebhookinfo(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        webhook = self._webhooks.get(bot_id, {})
        info: dict[str, Any] = {
            "url": webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates[bot_id]),
        }
        if webhook:
            info["max_connections"] = webhook.get("max_connections", 40)  # Bot API default
            if "allowed_updates" in webhook:
                info["allowed_updates"] = webhook["allowed_updates"]
        return info

    async def _api_getupdates(self, bot_id: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        if bot_id in self._webhooks:
            raise _TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        queue = self._updates[bot_id]
        offset = int(params.get("offset") or 0)
        if offset < 0:  # Bot API: keep the last -offset updates, forget the rest
            del queue[: max(0, len(queue) + offset)]
        elif offset:  # Bot API: an offset above an update_id confirms that update
            queue[:] = [update for update in queue if update["update_id"] >= offset]
        limit = min(max(int(params.get("limit") or GET_UPDATES_LIMIT), 1), GET_UPDATES_LIMIT)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        # Telegram serves one getUpdates consumer per bot: a newer request ends
        # a pending one with 409 "Conflict: terminated by other getUpdates request".
        self._poll_generation[bot_id] += 1
        generation = self._poll_generation[bot_id]
        self._notify()
        await self._wait_until(
            lambda: bool(queue) or self._closing or self._poll_generation[bot_id] != generation,
            timeout,
        )
        if self._poll_generation[bot_id] != generation:
            raise _TelegramError(409, "Conflict: terminated by other getUpdates request")
        return queue[:limit]

    def _api_setmycommands(self, bot_id: int, params: dict[str, Any]) -> bool:
        self._commands[_commands_key(bot_id, params)] = params.get("commands") or []
        return True

    def _api_deletemycommands(self, bot_id: int, params: dict[str, Any]) -> bool:
        self._commands.pop(_commands_key(bot_id, params), None)
        return True

    def _api_getmycommands(self, bot_id: int, params: dict[str, Any]) -> list[Any]:
        return self._commands.get(_commands_key(bot_id, params), [])

    def _api_getchat(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        no_gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **_resolve_chat(params),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": no_gifts,
        }

    def _api_getchatmember(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _TelegramError(400, "Bad Request: invalid user_id specified")
        user = (
            bot_user(bot_id)
            if user_id == bot_id
            else {"id": user_id, "is_bot": False, "first_name": "Test"}
        )
        return chat_member(user, **self._members.get((chat["id"], user_id), {"status": "member"}))

    def _api_getfile(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        file = self._files.get(str(params.get("file_id")))
        if file is None:
            raise _TelegramError(400, "Bad Request: invalid file_id")
        return file

    def _api_sendmessage(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        content = {"text": _message_text(params), **_pick(params, "entities")}
        return self._send(bot_id, chat, params, content)

    def _api_sendphoto(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        photo = self._input_file(params.get("photo"), "photos", "photo")
        content = {"photo": [{**photo, "width": 800, "height": 600}], **_caption(params)}
        return self._send(bot_id, chat, params, content)

    def _api_senddocument(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        document = self._input_file(params.get("document"), "documents", "document")
        return self._send(bot_id, chat, params, {"document": document, **_caption(params)})

    def _api_sendvideo(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        video = self._input_file(params.get("video"), "videos", "video")
        content = {"video": {**video, "width": 1280, "height": 720, "duration": 1}}
        return self._send(bot_id, chat, params, {**content, **_caption(params)})

    def _api_sendlocation(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        location = {"latitude": params.get("latitude"), "longitude": params.get("longitude")}
        return self._send(bot_id, chat, params, {"location": location})

    def _api_sendcontact(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = _resolve_chat(params)
        contact = _pick(params, "phone_number", "first_name", "last_name", "vcard")
        return self._send(bot_id, chat, params, {"contact": contact})

    def _api_copymessage(self, bot_id: int, params: dict[str, Any]) -> dict[str, int]:
        chat = _resolve_chat(params)
        source = self._copy_source(bot_id, params, params.get("message_id"))
        message = self._send(bot_id, chat, params, {**source, **_caption(params)})
        return {"message_id": message["message_id"]}  # Bot API: copyMessage returns a MessageId

    def _api_copymessages(self, bot_id: int, params: dict[str, Any]) -> list[dict[str, int]]:
        chat = _resolve_chat(params)
        message_ids = params.get("message_ids")
        if not isinstance(message_ids, list) or not 1 <= len(message_ids) <= 100:
            raise _TelegramError(400, "Bad Request: message_ids must hold 1-100 ids")
        copies = []
        for message_id in sorted(message_ids):  # Bot API: identifiers in strictly increasing order
            source = self._copy_source(bot_id, params, message_id)
            copies.append({"message_id": self._send(bot_id, chat, {}, source)["message_id"]})
        return copies

    def _copy_source(self, bot_id: int, params: dict[str, Any], message_id: Any) -> dict[str, Any]:
        """The content of the message being copied: a message the stand-in sent, else a stub."""
        if not isinstance(message_id, int):
            raise _TelegramError(400, "Bad Request: message identifier is not specified")
        source_chat = _resolve_chat({"chat_id": params.get("from_chat_id")})
        original = self._messages.get((bot_id, source_chat["id"], message_id), {})
        kept = {k: v for k, v in original.items() if k not in _NOT_COPIED}
        return kept or {"text": f"copy of message {message_id} of chat {source_chat['id']}"}

    def _api_editmessagetext(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any] | bool:
        changes = {"text": _message_text(params), **_pick(params, "entities")}
        return self._edit(bot_id, params, changes, replaced=("entities",))

    def _api_editmessagecaption(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any] | bool:
        return self._edit(
            bot_id, params, _caption(params), replaced=("caption", "caption_entities")
        )

    def _api_editmessagereplymarkup(
        self, bot_id: int, params: dict[str, Any]
    ) -> dict[str, Any] | bool:
        return self._edit(bot_id, params, {}, replaced=())

    # ---- helpers

    def _send(
        self, bot_id: int, chat: dict[str, Any], params: dict[str, Any], content: dict[str, Any]
    ) -> dict[str, Any]:
        self._last_message_id[(bot_id, chat["id"])] += 1
        message_id = self._last_message_id[(bot_id, chat["id"])]
        message = {
            "message_id": message_id,
            "from": bot_user(bot_id),
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        message.update(_inline_markup(params))
        self._messages[(bot_id, chat["id"], message_id)] = message
        return message

    def _edit(
        self,
        bot_id: int,
        params: dict[str, Any],
        changes: dict[str, Any],
        replaced: tuple[str, ...],
    ) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            return True  # Bot API: edits of inline messages return True
        chat = _resolve_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _TelegramError(400, "Bad Request: message identifier is not specified")
        key = (bot_id, chat["id"], message_id)
        # A message the stand-in never sent (e.g. from UpdateFactory) is edited as if it had.
        original = self._messages.get(key) or {
            "message_id": message_id,
            "from": bot_user(bot_id),
            "chat": chat,
            "date": int(time.time()),
        }
        message = {
            name: value
            for name, value in original.items()
            if name not in (*replaced, "reply_markup")
        }
        message.update(changes, edit_date=int(time.time()), **_inline_markup(params))
        self._messages[key] = message
        return message

    def _input_file(self, value: Any, folder: str, kind: str) -> dict[str, Any]:
        if isinstance(value, UploadedFile):
            number = len(self._files) + 1
            suffix = value.filename.rpartition(".")[2] if "." in value.filename else "bin"
            file = {
                "file_id": f"{kind}-{number}-{zlib.crc32(value.content):08x}",
                "file_unique_id": f"u{number}",
                "file_size": len(value.content),
                "file_path": f"{folder}/file_{number}.{suffix}",
            }
            self._files[file["file_id"]] = file
            self._file_contents[file["file_path"]] = value.content
            reference = {key: file[key] for key in ("file_id", "file_unique_id", "file_size")}
            if kind == "document":
                reference.update(file_name=value.filename, mime_type=value.content_type)
            return reference
        if isinstance(value, str) and value:  # a file_id or URL
            return {"file_id": value, "file_unique_id": f"u{zlib.crc32(value.encode()):08x}"}
        raise _TelegramError(400, f"Bad Request: there is no {kind} in the request")

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


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Collect parameters from the query string and a JSON, urlencoded or multipart body.

    Raises:
        ValueError: When the body cannot be parsed.
    """
    raw: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("JSON body is not an object")
        raw.update(body)
    elif request.body_exists:
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[name] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                raw[name] = value
    params = {name: _decode_param(name, value) for name, value in raw.items()}
    for name, value in params.items():
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
            params[name] = files.pop(value[9:])
    return params | files


def _decode_param(name: str, value: Any) -> Any:
    if not isinstance(value, str) or name in _FREE_TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # a plain string such as "HTML" or "@channel"


def _resolve_chat(params: dict[str, Any]) -> dict[str, Any]:
    """Build the Chat for ``chat_id``: private when positive, supergroup when negative,
    channel for "@username"."""
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise _TelegramError(400, "Bad Request: chat_id is empty")
    if isinstance(chat_id, str) and re.fullmatch(r"@\w{4,32}", chat_id):
        username = chat_id[1:]
        return {
            "id": -1_000_000_000_000 - zlib.crc32(username.lower().encode()),
            "type": "channel",
            "title": username,
            "username": username,
        }
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise _TelegramError(400, "Bad Request: chat not found")
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Test"}
    return {"id": chat_id, "type": "supergroup", "title": f"Test group {-chat_id}"}


def _message_text(params: dict[str, Any]) -> str:
    text = params.get("text")
    # aiogram leaves out empty strings, so a missing text is an empty one; Telegram trims it.
    if not isinstance(text, str) or not text.strip():
        raise _TelegramError(400, "Bad Request: message text is empty")
    if len(text) > MESSAGE_TEXT_LIMIT:
        raise _TelegramError(400, "Bad Request: message is too long")
    return text


def _caption(params: dict[str, Any]) -> dict[str, Any]:
    if len(str(params.get("caption") or "")) > CAPTION_LIMIT:
        raise _TelegramError(400, "Bad Request: message caption is too long")
    return _pick(params, "caption", "caption_entities")


def _inline_markup(params: dict[str, Any]) -> dict[str, Any]:
    # Bot API: Message.reply_markup is only ever an InlineKeyboardMarkup; reply keyboards
    # are not echoed back.
    markup = params.get("reply_markup")
    return (
        {"reply_markup": markup} if isinstance(markup, dict) and "inline_keyboard" in markup else {}
    )


def _pick(params: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: params[name] for name in names if params.get(name) is not None}


def _commands_key(bot_id: int, params: dict[str, Any]) -> tuple[int, str, str]:
    scope = params.get("scope") or {"type": "default"}
    return bot_id, json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


def _short(params: dict[str, Any], limit: int = 160) -> str:
    text = repr(params)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(call: RecordedCall) -> str:
    error = f" -> {call.error_code}" if call.error_code else ""
    return f"{call.method} bot_id={call.bot_id} {_short(call.params)}{error}"


async def _serve(host: str, port: int) -> None:
    stand_in = BotAPIStandIn()
    await stand_in.start(host, port)
    try:
        print(
            f"Bot API stand-in at {stand_in.base_url} (GET/DELETE /_calls, POST /_updates/<bot_id>)",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await stand_in.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground until interrupted (Ctrl+C).

    Args:
        argv: Command-line arguments without the program name; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(
        prog="python -m core.testing.botapi", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="TCP port (default 8081)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
