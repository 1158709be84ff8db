"""The HTTP server of ``tenantry run``: uvicorn's limits and a deadline for request bodies.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``), the
connections and requests it takes on at once (``limit_concurrency``, 503
beyond) and the size of the request head the h11 parser buffers
(``h11_max_incomplete_event_size``), but has no deadline for a request body
that trickles in: :class:`BodyReadTimeout` adds one. Slow *headers* are not
seen by the application at all; a proxy in front (haproxy or nginx ``timeout
http-request`` / ``client_header_timeout``) must cut those (``docs/ops.md``,
"Deployment advice").
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import Problem
from core.runtime.settings import RuntimeSettings

__all__ = ["BodyReadTimeout", "uvicorn_options"]

log = structlog.get_logger("tenantry.http")

EXEMPT_PREFIXES = ("/webhook/",)
"""Paths whose body is not put under the deadline: the webhook reads a body
only after the tenant's secret token matched, so only Telegram gets that far,
and a timer per update would cost on the runtime's hottest path."""


class _BodyTimedOut(BaseException):
    """Raised out of ``receive`` when the body deadline passes.

    A BaseException, as ``CancelledError`` is: the application's error
    handling (which turns every ``Exception`` into a 500) lets it through to
    :class:`BodyReadTimeout`, which answers 408.
    """


class BodyReadTimeout:
    """ASGI middleware: a request body must arrive within ``timeout`` seconds of its first read.

    The deadline starts when the application first asks for the body and ends
    with its last chunk; past it the request is abandoned and answered 408
    (``http.request_timeout``, a problem body, ``Connection: close``), logged
    at info. Requests under :data:`EXEMPT_PREFIXES`, non-HTTP scopes and a
    ``timeout`` of 0 pass untouched.

    Args:
        app: the ASGI application (the Litestar app of :func:`core.http.app.create_app`).
        timeout: seconds; 0 disables the deadline.
    """

    def __init__(self, app: ASGIApp, timeout: float):
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope, with the body deadline for HTTP requests."""
        if (
            scope["type"] != "http"
            or self.timeout <= 0
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        body_complete = False
        response_started = False

        async def receive_before_deadline() -> Message:
            nonlocal deadline, body_complete
            if body_complete:
                return await receive()  # after the body: only a disconnect can come
            if deadline is None:
                deadline = loop.time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def send_watching(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive_before_deadline, send_watching)
        except _BodyTimedOut:
            log.info(
                "request_body_timeout",
                method=scope.get("method"),
                path=scope.get("path"),
                timeout=self.timeout,
            )
            if not response_started:
                await _send_408(send, self.timeout)


async def _send_408(send: Send, timeout: float) -> None:
    body = msgspec.json.encode(
        Problem(
            type="about:blank",
            title="Request Timeout",
            status=408,
            detail=f"the request body did not arrive within {timeout:g} s",
            code="http.request_timeout",
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def uvicorn_options(settings: RuntimeSettings) -> dict[str, Any]:
    """uvicorn's connection limits from the ``TENANTRY_HTTP_*`` settings.

    Returns:
        Keyword arguments for ``uvicorn.run``: ``limit_concurrency`` (None for
        no limit), ``timeout_keep_alive`` and ``h11_max_incomplete_event_size``.
    """
    return {
        "limit_concurrency": settings.http_limit_concurrency or None,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.http_max_incomplete_event_bytes,
    }
