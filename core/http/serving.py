"""The HTTP server of ``tenantry run``: uvicorn's limits and deadlines for request heads and bodies.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``), the
connections and requests it takes on at once (``limit_concurrency``, 503
beyond) and the size of the request head the h11 parser buffers
(``h11_max_incomplete_event_size``), but has no deadline for a request head
or body that trickles in: :func:`header_deadline_protocol` adds one for the
head (request line and headers, which the application never sees) and
:class:`BodyReadTimeout` one for the body. A proxy in front should still cut
slow clients first (``docs/ops.md``, "Deployment advice").
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from core.errors import Problem
from core.runtime.settings import RuntimeSettings

__all__ = [
    "HEADER_TIMEOUT_SECONDS",
    "SERVER_SEND",
    "BodyReadTimeout",
    "header_deadline_protocol",
    "serve",
    "uvicorn_options",
]

log = structlog.get_logger("tenantry.http")

HEADER_TIMEOUT_SECONDS = 10.0
"""Default deadline, in seconds, for a request head to arrive in full (haproxy's and
nginx's usual ``timeout http-request`` / ``client_header_timeout``)."""

EXEMPT_PREFIXES = ("/webhook/",)
"""Paths whose body is not put under the deadline: the webhook reads a body
only after the tenant's secret token matched, so only Telegram gets that far,
and a timer per update would cost on the runtime's hottest path."""


SERVER_SEND = "tenantry.server_send"
"""Scope key of a WebSocket connection's ``send`` as the server gave it, before the app's
wrappers (set by :class:`BodyReadTimeout`): the realtime plugin writes its shared frames
through the server's connection (``plugins/realtime/_wire.py``)."""


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
    ``timeout`` of 0 pass untouched; a WebSocket scope gets the server's
    ``send`` under :data:`SERVER_SEND`.

    Args:
        app: the ASGI application (the Litestar app of :func:`core.http.app.create_app`).
        timeout: seconds; 0 disables the deadline.
    """

    def __init__(self, app: ASGIApp, timeout: float):
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope, with the body deadline for HTTP requests."""
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send  # type: ignore[literal-required]
            await self.app(scope, receive, send)
            return
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


def header_deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with a deadline for request heads.

    A connection must deliver a complete request head (request line and
    headers) within ``timeout`` seconds of being opened, and each later
    request on it within ``timeout`` seconds of its first byte (an idle
    keep-alive connection is uvicorn's ``timeout_keep_alive``). Past the
    deadline it is answered ``408 Request Timeout`` with ``Connection: close``
    and closed, logged at info as ``request_header_timeout``. So a client
    sending a header byte every few seconds no longer holds a connection,
    and a ``limit_concurrency`` slot, for ever. A connection upgraded to a
    WebSocket leaves the deadline behind.

    Args:
        timeout: seconds; 0 gives uvicorn's protocol unchanged.

    Returns:
        A protocol class for ``uvicorn.run(http=...)``.
    """
    if timeout <= 0:
        return AutoHTTPProtocol

    class HeaderDeadline(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        """uvicorn's protocol, closing connections whose request head does not arrive in time."""

        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm_head_deadline()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                self._disarm_head_deadline()  # closed, or handed to a WebSocket protocol
            elif self.cycle is None or self.cycle.response_complete:
                self._arm_head_deadline()  # bytes of a head that is not complete yet
            else:
                self._disarm_head_deadline()  # the head is in; the body has its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def _arm_head_deadline(self) -> None:
            if self._head_deadline is None:
                self._head_deadline = self.loop.call_later(timeout, self._head_deadline_passed)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_deadline_passed(self) -> None:
            self._head_deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if not waiting or self.transport.is_closing():
                return
            if self.transport.get_protocol() is not self:
                return
            log.info("request_header_timeout", timeout=timeout)
            message = f"the request head did not arrive within {timeout:g} s".encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                + b"content-length: %d\r\n" % len(message)
                + b"connection: close\r\n\r\n"
                + message
            )
            self.transport.close()

    return HeaderDeadline


def uvicorn_options(
    settings: RuntimeSettings, header_timeout: float | None = None
) -> dict[str, Any]:
    """uvicorn's connection limits from the ``TENANTRY_HTTP_*`` settings.

    Args:
        settings: the runtime's settings.
        header_timeout: seconds a request head may take to arrive
            (:func:`header_deadline_protocol`); 0 for none; None for
            ``settings.http_header_timeout_seconds``.

    Returns:
        Keyword arguments for ``uvicorn.run``: ``limit_concurrency`` (None for
        no limit), ``timeout_keep_alive``, ``h11_max_incomplete_event_size``,
        ``ws_per_message_deflate`` (``settings.http_ws_compression``) and
        ``http`` (the protocol with the head deadline).
    """
    return {
        "limit_concurrency": settings.http_limit_concurrency or None,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.http_max_incomplete_event_bytes,
        "ws_per_message_deflate": settings.http_ws_compression,
        "http": header_deadline_protocol(
            settings.http_header_timeout_seconds if header_timeout is None else header_timeout
        ),
    }


def serve(app: Any, settings: RuntimeSettings, *, host: str, port: int, **overrides: Any) -> None:
    """Serve ``app`` the way ``tenantry run`` does, until uvicorn is stopped (SIGINT, SIGTERM).

    The app behind :class:`BodyReadTimeout`, uvicorn with :func:`uvicorn_options`,
    the runtime's own logging (no uvicorn log config, no access log) and the
    lifespan on. Benchmarks that run a runtime of their own use it too, so they
    measure what is deployed.

    Args:
        app: the Litestar app (:func:`core.http.app.create_app`).
        settings: the runtime's settings.
        host: address to listen on.
        port: TCP port.
        **overrides: more ``uvicorn.run`` keyword arguments (``ws="wsproto"``).
    """
    import uvicorn

    uvicorn.run(
        BodyReadTimeout(app, settings.http_body_timeout_seconds),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        **{**uvicorn_options(settings), **overrides},
    )
