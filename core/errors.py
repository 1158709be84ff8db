"""One error shape for the runtime: ``HTTPException`` subclasses with a stable code, one problem body.

Plugins (and the core) refuse a request by raising one of the classes below
with a stable machine ``code`` (``<plugin>.<what>``: ``booking.slot_taken``,
``orders.below_minimum``) and a plain-words ``detail``::

    raise Conflict("booking.slot_taken", "this time was just taken", alternatives=[...])

Every 4xx and 5xx of the runtime is answered with the same body, an RFC 9457
problem (``application/problem+json``)::

    {"type": "about:blank", "title": "Conflict", "status": 409,
     "detail": "this time was just taken", "code": "booking.slot_taken",
     "alternatives": ["2026-05-01T16:30:00+00:00"]}

``type`` is ``about:blank`` and ``title`` the HTTP status phrase (RFC 9457
section 4.2.1: a problem with no further semantics than its status); clients
switch on ``code``. Keyword arguments become extension members (RFC 9457
section 3.2): ``errors`` for validation, ``current``/``allowed`` for status
transitions, ``retry_after`` with 429 and 503. Litestar renders the
exceptions through its problem-details plugin (``litestar.plugins.problem_details``);
``core.http.app.create_app`` maps Litestar's own errors (validation 400, 404, 405)
and unexpected exceptions (500) to the same body with :func:`problem_from_http_exception`
and :func:`internal_error`.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    SerializationException,
    ValidationException,
)
from litestar.plugins.problem_details import ProblemDetailsException

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "STORAGE_UNAVAILABLE",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Problem",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "default_code",
    "internal_error",
    "problem_from_http_exception",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
"""RFC 9457 section 3: the media type of a problem body in JSON."""

STORAGE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A server shutting down (``pg_ctl stop -m fast``, a failover) or restarting
    # after a crash ends its sessions with 57P01/57P02; a pooled connection
    # that was handed out just as that message arrived fails its next command
    # with asyncpg's InternalClientError ("cannot switch to state ..."). All
    # three mean "the server went away", not a bug of the caller: without
    # them an update in flight at the moment of a restart was acknowledged as
    # a handler error and lost (tests/test_failover_storage.py).
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
    # 25006: writes refused by a read-only server (a standby after a failover)
    # or by the copy a tenant moved away from (core.runtime.placement): the
    # write belongs elsewhere, and a retry reaches it once this runtime follows.
    asyncpg.ReadOnlySQLTransactionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
"""PostgreSQL or Redis could not be reached, refused a connection, or timed out.

HTTP routes answer these with 503 and ``Retry-After``; a webhook update that
hits one is not acknowledged (503), so Telegram delivers it again.
"""

_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "instance"})
"""RFC 9457 members (and ours, ``code``) that an extension member may not replace."""


class Problem(msgspec.Struct):
    """The body of every error answer of the runtime (RFC 9457, ``application/problem+json``).

    Extension members (``errors``, ``current``, ``allowed``, ``retry_after``,
    or a plugin's own such as ``alternatives``) follow these five.

    Attributes:
        type: ``about:blank``: the status says what kind of problem it is.
        title: the HTTP status phrase (``Conflict``).
        status: the HTTP status code.
        detail: what is wrong, in plain English words, for the developer.
        code: stable machine code, ``<area>.<what>`` (``booking.slot_taken``,
            ``request.invalid``, ``http.not_found``).
    """

    type: str
    title: str
    status: int
    detail: str
    code: str


def default_code(status: int) -> str:
    """The code of an error that has no code of its own: ``http.<status name>``.

    Args:
        status: an HTTP status code.

    Returns:
        ``http.not_found`` for 404, ``http.method_not_allowed`` for 405 (the
        lower-cased :class:`http.HTTPStatus` name), ``http.<status>`` for a
        status the standard library does not name.
    """
    try:
        return f"http.{HTTPStatus(status).name.lower()}"
    except ValueError:
        return f"http.{status}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ApiError(ProblemDetailsException):
    """A refusal with an HTTP status, a stable machine code and a plain-words detail.

    Raise a subclass (:class:`BadRequest`, :class:`NotFound`, :class:`Conflict`...);
    the runtime answers it as a :class:`Problem` and logs it once, at info
    (warning for 401 and 403), without a traceback.

    Attributes:
        status_code: the HTTP status (fixed by each subclass).
        code: stable machine code, ``<plugin>.<what>``; clients and bot texts
            key on it (``<plugin>.error.<what>``, see ``core.kit.error_text``).
        detail: plain words for the developer calling the API.
        extensions: JSON-ready extension members of the body (RFC 9457 section 3.2).
    """

    status_code = 400

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        """Build the error.

        Args:
            code: stable machine code, ``<plugin>.<what>``.
            detail: what is wrong, in plain words.
            status_code: override of the class's status (for converted errors).
            headers: response headers (``Retry-After``, ``Allow``).
            **extensions: extension members of the problem body.

        Raises:
            TypeError: an extension member would replace a problem member
                (``type``, ``title``, ``status``, ``detail``, ``code``, ``instance``).
        """
        clashes = _MEMBERS.intersection(extensions)
        if clashes:
            raise TypeError(f"extension members may not be named {', '.join(sorted(clashes))}")
        status = status_code or type(self).status_code
        super().__init__(
            detail=detail,
            status_code=status,
            headers=headers,
            extra=extensions,
            type_="about:blank",
            title=_phrase(status),
        )
        self.code = code
        self.extensions = extensions

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.detail!r})"

    def problem(self) -> dict[str, Any]:
        """The JSON-ready problem body: the five members, then the extensions."""
        return {
            "type": self.type_ or "about:blank",
            "title": self.title or _phrase(self.status_code),
            "status": self.status_code,
            "detail": self.detail,
            "code": self.code,
            **self.extensions,
        }

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """The ``application/problem+json`` response (Litestar's problem-details plugin calls it)."""
        return Response(
            self.problem(),
            status_code=self.status_code,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


class BadRequest(ApiError):
    """400: the request is malformed or asks for something the rules refuse."""

    status_code = 400


class Unauthorized(ApiError):
    """401: no credentials, or wrong ones (API key, WebApp init data, admin token)."""

    status_code = 401


class Forbidden(ApiError):
    """403: the caller is known but may not do this (a partner of another store)."""

    status_code = 403


class NotFound(ApiError):
    """404: no such entity, or one the caller may not see (another customer's order)."""

    status_code = 404


class Conflict(ApiError):
    """409: the request conflicts with the current state (slot taken, status moved)."""

    status_code = 409


class Unprocessable(ApiError):
    """422: well-formed, but its content cannot be processed (an invalid tenant file)."""

    status_code = 422


def _retry_headers(retry_after: float, headers: dict[str, str] | None) -> dict[str, str]:
    # RFC 9110 section 10.2.3: Retry-After is a whole number of seconds.
    return {**(headers or {}), "Retry-After": str(max(1, math.ceil(retry_after)))}


class TooManyRequests(ApiError):
    """429: over a rate limit; ``retry_after`` seconds until the next request may pass.

    The answer carries ``Retry-After`` (whole seconds, at least 1) and the
    ``retry_after`` extension member.
    """

    status_code = 429

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        retry_after: float,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        """Build the error.

        Args:
            code: stable machine code.
            detail: plain words.
            retry_after: seconds until a retry may succeed (rounded up, at least 1).
            headers: more response headers.
            **extensions: extension members.
        """
        seconds = max(1, math.ceil(retry_after))
        self.retry_after = seconds
        super().__init__(
            code,
            detail,
            headers=_retry_headers(seconds, headers),
            retry_after=seconds,
            **extensions,
        )


class ServiceUnavailable(ApiError):
    """503: a transient server-side condition (storage down, tenant not serving); retry later.

    The answer carries ``Retry-After`` (whole seconds, default 1) and the
    ``retry_after`` extension member.
    """

    status_code = 503

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        retry_after: float = 1,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        """Build the error.

        Args:
            code: stable machine code.
            detail: plain words.
            retry_after: seconds until a retry may succeed (rounded up, at least 1).
            headers: more response headers.
            **extensions: extension members.
        """
        seconds = max(1, math.ceil(retry_after))
        self.retry_after = seconds
        super().__init__(
            code,
            detail,
            headers=_retry_headers(seconds, headers),
            retry_after=seconds,
            **extensions,
        )


def _validation_errors(extra: Any) -> list[dict[str, Any]]:
    """Litestar's validation messages as ``[{"message", "key", "source"}]``.

    When a body fails, Litestar re-checks every field of the handler's
    signature one by one and also reports path parameters of the mount
    (``tenant_id``) that the handler does not take, as a KeyError message
    (``"'tenant_id'"``). The route matched, so the path is fine: those
    entries are dropped.
    """
    if not isinstance(extra, list):
        return []
    errors = [dict(item) if isinstance(item, dict) else {"message": str(item)} for item in extra]
    return [
        e
        for e in errors
        if not (e.get("source") == "path" and e.get("message") == repr(e.get("key")))
    ]


def problem_from_http_exception(exc: HTTPException) -> ApiError:
    """Convert an ``HTTPException`` that is not an :class:`ApiError` into one (same status).

    Used for Litestar's own errors and for ``HTTPException`` subclasses raised
    without a code:

    * a validation failure (``ValidationException``, 400) becomes
      ``request.invalid`` with ``errors: [{"message", "key", "source"}]`` and a
      detail naming each field;
    * a body that is not JSON becomes ``request.malformed_json`` (400);
    * anything else keeps its status and detail, with the exception's
      ``code`` attribute if it has one, else :func:`default_code` of the status.

    Args:
        exc: the exception raised.

    Returns:
        The :class:`ApiError` to answer with; ``headers`` are kept (``Allow``,
        ``Retry-After``), a mapping ``extra`` becomes extension members.
    """
    status = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        fields = "; ".join(
            f"{item['key']}: {item.get('message', 'invalid')}"
            if item.get("key")
            else item["message"]
            for item in errors
        )
        detail = f"invalid request: {fields}" if fields else exc.detail
        return ApiError(
            "request.invalid", detail, status_code=status, headers=headers, errors=errors
        )
    if isinstance(exc, ClientException) and isinstance(exc.__cause__, SerializationException):
        return ApiError(
            "request.malformed_json",
            f"the body is not valid JSON: {exc.detail}",
            status_code=status,
            headers=headers,
        )
    code = getattr(exc, "code", None)
    extensions: dict[str, Any] = {}
    if isinstance(exc.extra, dict):
        extensions = {k: v for k, v in exc.extra.items() if k not in _MEMBERS}
    elif exc.extra:
        extensions = {"errors": exc.extra}
    detail = exc.detail or _phrase(status)
    if status >= 500 and status != 503:
        # Never hand out what went wrong inside: it is logged with the traceback.
        detail = _phrase(status)
    return ApiError(
        code if isinstance(code, str) and code else default_code(status),
        detail,
        status_code=status,
        headers=headers,
        **extensions,
    )


def internal_error(exc: Exception) -> ApiError:
    """The 500 answer to an unexpected exception: ``http.internal_server_error``.

    The detail never carries the exception's text (it may hold SQL, paths or
    secrets); the exception is logged with its traceback instead.
    """
    return ApiError(default_code(500), "internal server error; it has been logged", status_code=500)
