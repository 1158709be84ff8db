"""The stand-in's HTTP server: routes, request parsing, dispatch to the methods, start and stop."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from typing import Any, Self

import msgspec
from aiohttp import web

from core.testing.botapi._bot_methods import BotMethods
from core.testing.botapi._message_methods import MessageMethods
from core.testing.botapi._state import (
    NOT_FOUND,
    RecordedCall,
    TelegramError,
    UploadedFile,
    short_repr,
)
from core.testing.botapi._steering import Steering

__all__ = ["TOKEN_PATTERN", "UPLOAD_LIMIT", "BotAPIStandIn"]

logger = logging.getLogger("tenantry.testing.botapi")

TOKEN_PATTERN = re.compile(r"(\d+):[A-Za-z0-9_-]+")
"""Bot API: a token looks like "123456:ABC-DEF1234ghIkl" (https://core.telegram.org/bots/api#authorizing-your-bot)."""
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


class BotAPIStandIn(Steering, BotMethods, MessageMethods):
    """An in-process HTTP server that answers Bot API requests for any number of bots.

    Any well-formed token is accepted; each distinct bot id gets its own chats, message ids,
    webhook, commands and update queue.
    """

    def __init__(self) -> None:
        super().__init__()
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

    # ---- HTTP

    @web.middleware
    async def _availability(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._unavailable is None or request.path.startswith("/_"):
            return await handler(request)
        if self._unavailable == "bad_gateway":
            return TelegramError(502, "Bad Gateway").response()
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # the connection is gone: nothing to answer

    async def _handle_method(self, request: web.Request) -> web.Response:
        arrived = time.time()
        token, method = request.match_info["token"], request.match_info["method"]
        token_match = TOKEN_PATTERN.fullmatch(token)
        if token_match is None:
            return NOT_FOUND.response()
        try:
            params = await _read_params(request)
        except ValueError:
            return TelegramError(400, "Bad Request: can't parse request").response()
        bot_id = int(token_match.group(1))
        call = RecordedCall(token=token, bot_id=bot_id, method=method, params=params, at=arrived)
        try:
            result = await self._answer(bot_id, method.lower(), params)
            response = web.json_response({"ok": True, "result": result})
        except (TypeError, ValueError) as exc:  # e.g. offset="abc"
            call.error_code = 400
            response = TelegramError(400, f"Bad Request: invalid parameters ({exc})").response()
        except TelegramError as error:
            call.error_code = error.error_code
            response = error.response()
        self._calls.append(call)
        self._notify()
        logger.info(
            "bot %s %s %s -> %s", bot_id, method, short_repr(params), call.error_code or "ok"
        )
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
            return NOT_FOUND.response()
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
            return TelegramError(400, "Bad Request: an Update must be a JSON object").response()
        update = self.enqueue_update(int(request.match_info["bot_id"]), update)
        return web.json_response({"ok": True, "result": update})

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        return NOT_FOUND.response()


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
