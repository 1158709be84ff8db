"""Rate limits of writes: per API key, per WebApp user and per bot user, kept in Redis.

One Telegram user must not be able to book every free slot of a day in half a
second, and one leaked API key must not starve a tenant. Every write of a
caller is counted in a moving window (the ``limits`` library's
``MovingWindowRateLimiter``: exact, a refused attempt is not counted) against
the tenant's ``limits:`` block (:class:`core.config.model.LimitsConfig`):

* ``api_writes`` per API key and ``webapp_writes`` per WebApp user, on HTTP
  routes that take the guard :func:`limit_writes` after their auth guard::

      @post("/bookings", guards=[require_api_key_or_webapp, limit_writes])

  Over the limit the answer is 429 (``ratelimit.exceeded``, a problem body
  with ``retry_after``) and ``Retry-After`` in whole seconds. ``GET``,
  ``HEAD`` and ``OPTIONS`` are never counted, so the guard may sit on a
  whole controller.
* ``bot_writes`` per Telegram user, on aiogram handlers registered with
  ``flags=BOT_WRITE`` in a router passed to :func:`limit_bot_writes`::

      router.callback_query.register(confirm_pressed, ..., flags=BOT_WRITE)
      limit_bot_writes(router)

  Over the limit the handler does not run; the user gets the tenant text
  ``error.rate_limited`` (``{seconds}``), as an alert for a button press.

The counters live under the tenant's Redis prefix
(``<prefix>ratelimit/<limit>/<caller>/<count>/<n>/<period>``, sorted sets that
expire with their window), written through one ``limits`` storage per
runtime that shares the runtime's Redis connection pool.
"""

from __future__ import annotations

import hashlib
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec
from aiogram import Router
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, Message, TelegramObject
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from litestar.connection import ASGIConnection
from litestar.exceptions import ImproperlyConfiguredException

from core.errors import TooManyRequests
from core.http.auth import _presented_key, resolve_tenant

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler
    from redis.asyncio import Redis

    from core.runtime.tenant import Tenant

__all__ = [
    "BOT_WRITE",
    "SAFE_METHODS",
    "BotWriteLimit",
    "Refusal",
    "caller_identity",
    "hit",
    "limit_bot_writes",
    "limit_writes",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that read only (RFC 9110 section 9.2.1): never counted as writes."""

BOT_WRITE = {"rate_limit": "bot_writes"}
"""aiogram handler flags of a writing handler: ``register(handler, ..., flags=BOT_WRITE)``."""


class Refusal(msgspec.Struct, frozen=True):
    """A write refused by a rate limit.

    Attributes:
        limit: the ``limits:`` field (``webapp_writes``).
        rate: the rate that was exceeded, as ``limits`` prints it (``10 per 1 minute``).
        retry_after: whole seconds until one more write fits, at least 1.
    """

    limit: str
    rate: str
    retry_after: int


class _TenantKeyedBridge(RedispyBridge):
    """limits' redis-py bridge without its own key prefix.

    Every key already starts with the tenant's prefix (see :func:`_rates`), so
    one storage serves all tenants of a runtime.
    """

    def prefixed_key(self, key: str) -> str:
        """The key as given: it starts with the tenant's Redis prefix."""
        return key


class _SharedClientStorage(RedisStorage):
    """limits' async Redis storage on the runtime's own Redis client.

    The client itself, not a new one on its pool: a Redis Cluster client has
    no single pool, and limits' scripts touch one key each, which carries the
    tenant's hash tag there (:func:`core.runtime.rediscluster.tagged_prefix`).
    """

    def __init__(self, redis: Redis):
        self._client = redis
        super().__init__("async+redis://", implementation="redispy")

    def configure_bridge(self) -> None:
        """Swap in the bridge that adds no prefix, on the shared client."""
        self.bridge = _TenantKeyedBridge(
            self.bridge.uri, self.bridge.dependency, "", **self.options
        )
        client = self._client
        self.bridge.storage = client
        self.bridge.connection_getter = lambda _readonly: client


# One limiter per runtime Redis client; the entry goes with the client.
_limiters: weakref.WeakKeyDictionary[Any, MovingWindowRateLimiter] = weakref.WeakKeyDictionary()


def _limiter(redis: Redis) -> MovingWindowRateLimiter:
    limiter = _limiters.get(redis)
    if limiter is None:
        limiter = MovingWindowRateLimiter(_SharedClientStorage(redis))
        _limiters[redis] = limiter
    return limiter


@lru_cache(maxsize=4096)
def _rates(namespace: str, notation: str) -> tuple[RateLimitItem, ...]:
    """The rates of ``notation`` (validated by LimitsConfig) whose keys start with ``namespace``."""
    return tuple(
        type(rate)(rate.amount, rate.multiples, namespace=namespace)
        for rate in parse_many(notation)
    )


async def hit(tenant: Tenant, limit: str, caller: str) -> Refusal | None:
    """Count one write of ``caller`` against the tenant's ``limits.<limit>``.

    Args:
        tenant: the tenant (its limits and Redis prefix).
        limit: ``api_writes``, ``webapp_writes`` or ``bot_writes``.
        caller: who writes, e.g. ``webapp:7001`` (:func:`caller_identity`).

    Returns:
        None when the write may go on (it was counted), else the
        :class:`Refusal` (nothing counted).

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: Redis is unavailable
            (answered 503, as every storage outage).
    """
    limiter = _limiter(tenant.redis)
    for rate in _rates(tenant.key("ratelimit"), getattr(tenant.config.limits, limit)):
        if await limiter.hit(rate, limit, caller):
            continue
        stats = await limiter.get_window_stats(rate, limit, caller)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Refusal(limit=limit, rate=str(rate), retry_after=retry_after)
    return None


def caller_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Who calls a tenant route, as a key part: ``webapp:<user id>`` or ``api_key:<digest>``.

    An API key is named by the first 16 hex digits of its SHA-256, never by
    itself, so no key is written to Redis.

    Raises:
        ImproperlyConfiguredException: the route has no auth guard before this
            check (a plugin bug, answered 500 and logged).
    """
    caller = getattr(connection.state, "actor", None)
    if caller is None:
        raise ImproperlyConfiguredException("limit_writes needs an auth guard before it")
    if caller.via == "webapp":
        return f"webapp:{caller.user_id}"
    presented = _presented_key(connection)
    if presented is None:
        # A staff page signed in with an API key (core.web.sessions): the key's
        # own bucket, which the session record names by the key's SHA-256.
        presented = getattr(connection.state, "web_key_sha256", None) or ""
        return "api_key:" + presented[:16] if presented else "api_key:unknown"
    return "api_key:" + hashlib.sha256(presented.encode()).hexdigest()[:16]


async def limit_writes(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: count a write of the caller against ``api_writes`` or ``webapp_writes``.

    Put it after the route's auth guard (it needs the caller). Safe methods
    pass uncounted.

    Raises:
        TooManyRequests: 429 ``ratelimit.exceeded`` with ``Retry-After``.
        ImproperlyConfiguredException: no auth guard ran before it.
    """
    if connection.scope["method"] in SAFE_METHODS:
        return
    identity = caller_identity(connection)
    limit = "webapp_writes" if identity.startswith("webapp:") else "api_writes"
    refusal = await hit(resolve_tenant(connection), limit, identity)
    if refusal is not None:
        who = "this WebApp user" if limit == "webapp_writes" else "this API key"
        raise TooManyRequests(
            "ratelimit.exceeded",
            f"{who} is over its limit of {refusal.rate} writes; retry in {refusal.retry_after} s",
            retry_after=refusal.retry_after,
            limit=limit,
        )


class BotWriteLimit:
    """aiogram inner middleware: checks handlers flagged with :data:`BOT_WRITE`.

    Unflagged handlers run untouched (one dictionary lookup). A flagged
    handler runs only when the update's user is within ``limits.bot_writes``;
    otherwise the user is told politely (tenant text ``error.rate_limited``)
    and the refusal is logged at info.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        limit = get_flag(data, "rate_limit")
        user = data.get("event_from_user")
        if limit is None or user is None:
            return await handler(event, data)
        tenant: Tenant = data["tenant"]
        refusal = await hit(tenant, limit, f"telegram:{user.id}")
        if refusal is None:
            return await handler(event, data)
        tenant.log.info(
            "rate_limited",
            limit=limit,
            rate=refusal.rate,
            user_id=user.id,
            retry_after=refusal.retry_after,
        )
        text = tenant.text("error.rate_limited", seconds=refusal.retry_after)
        if isinstance(event, CallbackQuery):
            await event.answer(text, show_alert=True)
        elif isinstance(event, Message):
            await event.answer(text)
        return None


def limit_bot_writes(router: Router) -> Router:
    """Check the handlers of ``router`` flagged :data:`BOT_WRITE` against ``limits.bot_writes``.

    Installs :class:`BotWriteLimit` on the router's message and callback-query
    observers (aiogram runs inner middlewares of a router for its own and its
    nested routers' handlers).

    Returns:
        The same router.
    """
    middleware = BotWriteLimit()
    router.message.middleware(middleware)
    router.callback_query.middleware(middleware)
    return router
