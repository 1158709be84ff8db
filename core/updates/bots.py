"""aiogram wiring: one Bot and Dispatcher per tenant, one shared HTTP session.

* All bots share one :class:`AiohttpSession` pointed at ``TENANTRY_BOT_API_URL``
  with :meth:`TelegramAPIServer.from_base`.
* FSM state lives in aiogram's ``RedisStorage`` with
  ``DefaultKeyBuilder(prefix=<tenant prefix>fsm, with_bot_id=True)``.
* Every handler and filter gets ``tenant`` and ``db`` as aiogram workflow data
  (``Dispatcher(**kwargs)``). Log lines carry ``tenant`` and ``update_id``: the
  webhook binds them before dispatching; polling tenants get an outer
  middleware that does. An outer middleware resolves the update's ``actor``
  (:class:`core.actors.Actor`) once, for handlers and role filters.
* Webhook tenants register with setWebhook in the background, retrying with
  exponential backoff while the Bot API is unreachable. The registration's
  digest is remembered in Redis (:data:`REGISTRATION_TTL_SECONDS`), so a
  restart or another runtime calls setWebhook / setMyCommands only when what
  they would set changed; each call takes a slot of the bot's send budget
  (:class:`core.updates.limiter.BotLimiter`). A removed webhook tenant gets
  deleteWebhook; a swapped one keeps its webhook.
* Polling tenants are polled by the one runtime holding the tenant's Redis
  polling lock (:data:`POLLING_LOCK_SECONDS`, renewed every third of it), so
  another runtime takes over within about 10 s of the holder's death. A
  batch of updates is handled one by one and confirmed (the next getUpdates
  offset) only after all were handled, and each update is claimed in the
  :class:`~core.updates.dedupe.UpdateLedger` and marked done before the next
  one: a runtime killed mid-batch loses nothing, and the next poller skips
  the updates already handled.
* A Bot API outage is logged as one warning line per retry or failed answer,
  without a traceback (``bot_registration_failed``, ``polling_failed``,
  ``bot_api_unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from aiogram.types import BotCommand, BotCommandScopeChat, ErrorEvent, TelegramObject, Update
from redis.exceptions import LockError

from core.actors import resolve_actor
from core.errors import STORAGE_UNAVAILABLE
from core.runtime.tenant import CommandSpec, Tenant, TenantState
from core.updates.dedupe import Claim, UpdateLedger
from core.updates.limiter import TELEGRAM_BOT_RATE, BotLimiter, bot_rate_key

__all__ = ["BotHub", "webhook_secret"]

log = structlog.get_logger("tenantry.bots")

# Bot API setWebhook retries: 1 s, 2 s, 4 s ... capped at 60 s.
RETRY_FIRST_DELAY = 1.0
RETRY_MAX_DELAY = 60.0
# A dead poller's lock expires after this long; the holder renews it every third.
POLLING_LOCK_SECONDS = 6
# What a bot was registered with is remembered this long (then set again once).
REGISTRATION_TTL_SECONDS = 24 * 3600
# Lazy webhook tenants built and registered at once in the background (bounds the memory
# of a first start with thousands of tenants: each is dropped again once registered).
REGISTER_CONCURRENCY = 16
# getUpdates long-polling timeout (Bot API ``timeout``), seconds.
POLLING_TIMEOUT_SECONDS = 10
# deleteWebhook of a removed tenant: one attempt, bounded so that removal
# (an admin request) never waits long on an unreachable Bot API.
DELETE_WEBHOOK_TIMEOUT = 10.0


_PINNED_RESPONSE_MODELS: list[Any] = []


def pin_response_models() -> None:
    """Keep aiogram's ``Response[T]`` models alive for every Bot API method's result type.

    aiogram validates each Bot API answer with ``Response[method.__returning__]``
    (``aiogram/client/session/base.py``). pydantic caches parametrised generic
    models in a ``WeakValueDictionary``, so without a strong reference the model
    is garbage-collected and rebuilt (pydantic schema generation, milliseconds)
    on later calls. Holding one reference per result type (about 40, built once
    per process in roughly 0.1 s) makes every call reuse them.
    """
    if _PINNED_RESPONSE_MODELS:
        return
    import aiogram.methods
    from aiogram.methods.base import Response

    result_types = {}
    for name in aiogram.methods.__all__:
        returning = getattr(getattr(aiogram.methods, name), "__returning__", None)
        if returning is not None:
            result_types[repr(returning)] = returning
    for result_type in result_types.values():
        try:
            _PINNED_RESPONSE_MODELS.append(Response[result_type])
        except Exception:  # a method whose result type pydantic cannot build on its own
            continue


def webhook_secret(secret_key: str, tenant_id: str) -> str:
    """Derive a tenant's webhook secret from the runtime secret key.

    HMAC-SHA256(secret_key, "webhook:" + tenant_id) as hex: 64 characters, inside
    the Bot API's setWebhook.secret_token alphabet (1-256 chars ``A-Za-z0-9_-``).
    """
    return hmac.new(
        secret_key.encode(), f"webhook:{tenant_id}".encode(), hashlib.sha256
    ).hexdigest()


PREFETCHED_STATE: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "tenantry_prefetched_state", default=None
)
"""``(redis key, value)`` of the FSM state the webhook read with its dedupe claim."""


class _TenantStorage(RedisStorage):
    """RedisStorage on the runtime's shared client, which the Dispatcher must not close.

    ``get_state`` first takes the value the webhook prefetched for this update
    in the same Redis round trip as its dedupe claim (see
    :func:`fsm_state_key`); the Dispatcher runs without event isolation, so
    reading the state a moment earlier changes nothing.
    """

    async def get_state(self, key: StorageKey) -> str | None:
        """The FSM state of ``key``: the prefetched value when it is for this key."""
        prefetched = PREFETCHED_STATE.get()
        if prefetched is not None:
            PREFETCHED_STATE.set(None)
            if prefetched[0] == self.key_builder.build(key, "state"):
                return prefetched[1]
        return await super().get_state(key)

    async def close(self) -> None:
        """Keep the shared client open: the runtime closes it at shutdown."""


def fsm_state_key(tenant: Tenant, update: Update) -> str | None:
    """The Redis key aiogram's FSM will read for ``update``, or None when it reads none.

    Resolved exactly as the Dispatcher does: ``UserContextMiddleware`` finds
    the chat, user, thread and business connection, the FSM middleware applies
    its strategy, and the storage's key builder names the ``state`` key.
    """
    context = UserContextMiddleware.resolve_event_context(update)
    fsm = tenant.dispatcher.fsm.resolve_context(
        tenant.bot,
        chat_id=context.chat_id,
        user_id=context.user_id,
        thread_id=context.thread_id,
        business_connection_id=context.business_connection_id,
    )
    if fsm is None:
        return None
    return tenant.dispatcher.fsm.storage.key_builder.build(fsm.key, "state")


class _PollingLogContext(BaseMiddleware):
    """Outer update middleware of polling tenants: binds the ``tenant`` and
    ``update_id`` log context (the webhook binds it before dispatching)."""

    def __init__(self, tenant: Tenant):
        self.tenant = tenant

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        update_id = event.update_id if isinstance(event, Update) else None
        tokens = structlog.contextvars.bind_contextvars(tenant=self.tenant.id, update_id=update_id)
        try:
            return await handler(event, data)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


class _PolledUpdateClaim(BaseMiddleware):
    """Polling tenants: each update is handled once across pollers, via the update ledger.

    The update is claimed before its handlers run and marked done right
    after, before the batch's next update (polling handles a batch in order
    and confirms it with the next getUpdates). When a poller dies mid-batch,
    the next one gets the unconfirmed updates again: the done ones are
    skipped, and the one whose claim the dead poller held (``processing``)
    is taken over, since only the holder of the polling lock polls. While
    Redis is unreachable the update is handled unclaimed: a possible
    duplicate is better than a lost update.
    """

    def __init__(self, tenant: Tenant, ledger: UpdateLedger):
        self.tenant = tenant
        self.ledger = ledger

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        key = self.ledger.key(self.tenant, event.update_id)
        try:
            claim, _ = await self.ledger.claim(key)
        except STORAGE_UNAVAILABLE as exc:
            self.tenant.log.warning("update_unclaimed", update_id=event.update_id, error=str(exc))
            return await handler(event, data)
        if claim is Claim.DONE:
            self.tenant.log.info("update_duplicate", update_id=event.update_id)
            return None
        if claim is Claim.IN_PROGRESS:
            self.tenant.log.info("update_claim_taken_over", update_id=event.update_id)
        try:
            result = await handler(event, data)
        except BaseException:
            await self.ledger.release(key)
            raise
        await self.ledger.complete(key)
        return result


class _ActorContext(BaseMiddleware):
    """Outer update middleware of every tenant: the update's actor, once, as ``actor``.

    Runs after aiogram's ``UserContextMiddleware`` (which finds
    ``event_from_user``) and resolves the user through every enabled
    plugin's ``grant_roles`` (:func:`core.actors.resolve_actor`); handlers
    and filters (:class:`core.actors.HasRole`) take it as ``actor``. An
    update without a user (a channel post) has no actor.
    """

    __slots__ = ("tenant",)

    def __init__(self, tenant: Tenant):
        self.tenant = tenant

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        if user is not None:
            fields = {"first_name": user.first_name}
            if user.username:
                fields["username"] = user.username
            if user.language_code:
                fields["language_code"] = user.language_code
            data["actor"] = await resolve_actor(self.tenant, user.id, via="bot", user=fields)
        return await handler(event, data)


class _RoleCommandGate(BaseMiddleware):
    """Outer message middleware: a role-only command from an actor without the role is refused.

    The commands are the tenant's ``register_commands`` entries that name
    roles (:class:`core.runtime.tenant.CommandSpec`). Such a message never
    reaches the routers: the sender gets the core's polite text
    (``error.role_required``, :func:`core.builtin.role_refusal`) and the
    refusal is logged at info as ``command_refused``. Other messages cost a
    look at their first character.
    """

    __slots__ = ("roles_of", "tenant")

    def __init__(self, tenant: Tenant, commands: list[CommandSpec]):
        self.tenant = tenant
        self.roles_of = {c.command: c.roles for c in commands if c.roles}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        text = getattr(event, "text", None)
        if text and text[0] == "/" and len(text) > 1:
            # Bot API: a command is "/name" or "/name@bot_username", then arguments.
            name = text[1:].split(maxsplit=1)[0].partition("@")[0].lower()
            roles = self.roles_of.get(name)
            actor = data.get("actor")
            if roles and actor is not None and not actor.has_role(*roles):
                from core.builtin import role_refusal

                self.tenant.log.info(
                    "command_refused", command=name, roles=list(roles), user_id=actor.user_id
                )
                return await event.answer(role_refusal(self.tenant, roles))  # type: ignore[attr-defined]
        return await handler(event, data)


def _outage_router(tenant: Tenant) -> Router:
    """The last router of every Dispatcher: Bot API outages met by a handler.

    A handler's answer that cannot reach the Bot API (no connection, a
    timeout, a 5xx of the Bot API server) is not a bug of the handler: it is
    logged as one ``bot_api_unavailable`` warning naming the tenant, the
    update and the Bot API method, without a traceback, and the update is
    acknowledged like any other handler failure. Included last, so a
    plugin's own error handlers see the error first.
    """
    router = Router(name=f"outages:{tenant.id}")

    async def bot_api_unavailable(event: ErrorEvent) -> bool:
        error = event.exception
        method = getattr(getattr(error, "method", None), "__api_method__", None)
        tenant.log.warning(
            "bot_api_unavailable",
            update_id=event.update.update_id,
            method=method,
            error=str(error) or type(error).__name__,
        )
        return True

    router.errors.register(
        bot_api_unavailable, ExceptionTypeFilter(TelegramNetworkError, TelegramServerError)
    )
    return router


class BotHub:
    """Creates and runs the bots of all tenants of a runtime.

    Args:
        redis: the shared Redis client (FSM storage, polling locks,
            registration digests, send budgets).
        ledger: the runtime's update ledger (polled updates are claimed in it).
        bot_api_url: Bot API base URL.
        public_url: this runtime's external base URL for setWebhook, or None.
        secret_key: derives webhook secrets.
        code: names this release's code (package version and plugins): a
            new one registers every bot again, since its routers may use
            other update types or commands.
    """

    def __init__(
        self,
        redis: Any,
        ledger: UpdateLedger,
        bot_api_url: str,
        public_url: str | None,
        secret_key: str,
        code: str = "",
    ):
        pin_response_models()
        self.code = code
        self.redis = redis
        self.ledger = ledger
        self.session = AiohttpSession(api=TelegramAPIServer.from_base(bot_api_url.rstrip("/")))
        self.public_url = public_url.rstrip("/") if public_url else None
        self.secret_key = secret_key
        self._tasks: dict[int, list[asyncio.Task[None]]] = {}
        self._registering = asyncio.Semaphore(REGISTER_CONCURRENCY)

    def secret_for(self, tenant: Tenant) -> str:
        """The tenant's webhook secret: ``bot.webhook_secret`` or the derived one (cached)."""
        if tenant.webhook_secret is None:
            tenant.webhook_secret = tenant.config.bot.webhook_secret or webhook_secret(
                self.secret_key, tenant.id
            )
        return tenant.webhook_secret

    def prepare(self, tenant: Tenant) -> None:
        """Give ``tenant`` its Bot (cheap: no request is made)."""
        tenant.bot = Bot(tenant.config.bot.token, session=self.session)

    def build(self, tenant: Tenant, routers: list[Router]) -> None:
        """Give ``tenant`` (prepared) a Dispatcher holding ``routers``."""
        if tenant.bot is None:
            self.prepare(tenant)
        storage = _TenantStorage(
            self.redis,
            key_builder=DefaultKeyBuilder(prefix=f"{tenant.redis_prefix}fsm", with_bot_id=True),
        )
        # ``tenant`` and ``db`` reach every handler and filter as aiogram workflow data.
        dispatcher = Dispatcher(
            storage=storage, name=f"tenant:{tenant.id}", tenant=tenant, db=tenant.db
        )
        if tenant.config.bot.mode == "polling":
            dispatcher.update.outer_middleware(_PollingLogContext(tenant))
            dispatcher.update.outer_middleware(_PolledUpdateClaim(tenant, self.ledger))
        dispatcher.update.outer_middleware(_ActorContext(tenant))
        if any(c.roles for c in tenant.commands):
            dispatcher.message.outer_middleware(_RoleCommandGate(tenant, tenant.commands))
        dispatcher.include_routers(*routers, _outage_router(tenant))
        tenant.dispatcher = dispatcher

    def unload(self, tenant: Tenant) -> None:
        """Drop ``tenant``'s Dispatcher and routers (idle); :meth:`build` makes them again."""
        tenant.dispatcher = None  # type: ignore[assignment]

    def _memo(self, tenant: Tenant) -> str:
        """What decides a registration: the tenant file, this runtime's URL, secret and code."""
        parts = (tenant.source_hash, self.public_url or "", self.secret_for(tenant), self.code)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    async def registered(self, tenant: Tenant) -> bool:
        """True when the bot was registered for this very tenant file, URL, secret and code.

        Then nothing the bot would register can differ, and its Dispatcher
        need not be built to find out. False while Redis is unreachable.
        """
        key = tenant.key("bot-registration", tenant.config.bot.bot_id, "source")
        try:
            return await self.redis.get(key) == self._memo(tenant)
        except STORAGE_UNAVAILABLE:
            return False

    def start(self, tenant: Tenant, commands: list[CommandSpec]) -> None:
        """Start background registration (webhook) or polling for ``tenant``."""
        tasks = [
            asyncio.create_task(self._register(tenant, commands), name=f"register:{tenant.id}")
        ]
        if tenant.config.bot.mode == "polling":
            tasks.append(asyncio.create_task(self._poll(tenant), name=f"poll:{tenant.id}"))
        self._tasks[id(tenant)] = tasks

    def register_later(self, tenant: Tenant, assemble: Callable[[Tenant], Awaitable[None]]) -> None:
        """Build ``tenant``'s bot, register it and drop it again, in the background.

        For a webhook tenant started without its Dispatcher whose registration
        is not current (a first start, a changed file): at most
        :data:`REGISTER_CONCURRENCY` are built at once, and one that got no
        update meanwhile is dropped once registered, so a first start of
        thousands of tenants never holds all their bots. A plugin whose
        routers fail to build marks the tenant ``failed``.
        """
        task = asyncio.create_task(
            self._build_and_register(tenant, assemble), name=f"register:{tenant.id}"
        )
        self._tasks[id(tenant)] = [task]

    async def _build_and_register(
        self, tenant: Tenant, assemble: Callable[[Tenant], Awaitable[None]]
    ) -> None:
        structlog.contextvars.bind_contextvars(tenant=tenant.id)
        async with self._registering:
            try:
                await assemble(tenant)
            except Exception as exc:
                tenant.state = TenantState.FAILED
                tenant.detail = f"{type(exc).__name__}: {exc}"
                tenant.log.exception("tenant_assembly_failed")
                return
            built = tenant.last_used
            await self._register(tenant, tenant.commands)
        if tenant.last_used == built and not tenant.busy:
            self.unload(tenant)

    async def stop(self, tenant: Tenant, *, delete_webhook: bool = False) -> None:
        """Stop polling and registration retries of ``tenant``.

        Args:
            tenant: the tenant being swapped out, removed or shut down.
            delete_webhook: also call Bot API deleteWebhook for a webhook
                tenant, so Telegram stops posting its updates (the tenant was
                removed). False keeps the webhook set: for a swap the new
                config serves the same webhook, and at shutdown Telegram
                queues updates until the runtime is back. A failure (Bot API
                unreachable) is logged as ``webhook_delete_failed`` and the
                tenant is stopped anyway.
        """
        for task in self._tasks.pop(id(tenant), []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if delete_webhook and tenant.bot is not None:
            # Re-adding the tenant registers its bot again.
            key = tenant.key("bot-registration", tenant.config.bot.bot_id)
            with contextlib.suppress(*STORAGE_UNAVAILABLE):
                await self.redis.delete(key, f"{key}:source")
        if delete_webhook and tenant.bot is not None and tenant.config.bot.mode == "webhook":
            try:
                async with asyncio.timeout(DELETE_WEBHOOK_TIMEOUT):
                    await tenant.bot.delete_webhook()
                tenant.log.info("webhook_deleted")
            except (TelegramNetworkError, TelegramAPIError, OSError, TimeoutError) as exc:
                tenant.log.warning("webhook_delete_failed", error=str(exc) or type(exc).__name__)

    async def close(self) -> None:
        """Close the shared HTTP session."""
        await self.session.close()

    def _registration(self, tenant: Tenant, commands: list[CommandSpec]) -> list[tuple[str, dict]]:
        """The Bot API calls that register ``tenant``'s bot, as ``(method, params)`` in order.

        Webhook mode: setWebhook (when ``TENANTRY_PUBLIC_URL`` is set); polling:
        deleteWebhook (Telegram refuses getUpdates while a webhook is set). Then
        setMyCommands: public commands for everyone; in each admin's chat, those
        an admin may use too (the other roles' commands are listed by ``/help``).
        """
        calls: list[tuple[str, dict]] = []
        if tenant.config.bot.mode == "webhook":
            if self.public_url is not None:
                calls.append(
                    (
                        "setWebhook",
                        {
                            "url": f"{self.public_url}/webhook/{tenant.id}",
                            "secret_token": self.secret_for(tenant),
                            "allowed_updates": tenant.dispatcher.resolve_used_update_types(),
                        },
                    )
                )
        else:
            calls.append(("deleteWebhook", {}))

        def menu(specs: list[CommandSpec]) -> list[dict[str, str]]:
            return [{"command": c.command, "description": c.description} for c in specs]

        public = [c for c in commands if not c.roles]
        if public:
            calls.append(("setMyCommands", {"commands": menu(public)}))
        admins = [c for c in commands if c.visible_to(frozenset({"admin", "customer"}))]
        if len(public) != len(admins):
            for admin in tenant.config.bot.admins:
                calls.append(("setMyCommands", {"commands": menu(admins), "chat_id": admin}))
        return calls

    async def _call(self, tenant: Tenant, method: str, params: dict) -> None:
        """Make one registration call (see :meth:`_registration`) through aiogram."""
        bot = tenant.bot
        if method == "setWebhook":
            await bot.set_webhook(**params)
        elif method == "deleteWebhook":
            await bot.delete_webhook()
        else:
            scope = BotCommandScopeChat(chat_id=params["chat_id"]) if "chat_id" in params else None
            await bot.set_my_commands([BotCommand(**c) for c in params["commands"]], scope=scope)

    async def _register(self, tenant: Tenant, commands: list[CommandSpec]) -> None:
        """Register ``tenant``'s bot, retrying until the Bot API answers.

        What was registered is remembered in Redis under
        ``<prefix>bot-registration:<bot id>`` as a digest of the calls (for
        :data:`REGISTRATION_TTL_SECONDS`): when the calls a restart or another
        runtime would make have that digest, none is made. Each call waits
        for a slot of the bot's send budget; a 429 answer pauses every sender
        of the bot for its ``retry_after`` (Bot API ``ResponseParameters``).
        """
        # Log lines of this task (aiogram's too) name the tenant.
        structlog.contextvars.bind_contextvars(tenant=tenant.id)
        if tenant.config.bot.mode == "webhook" and self.public_url is None:
            tenant.detail = "webhook not registered: TENANTRY_PUBLIC_URL is not set"
        calls = self._registration(tenant, commands)
        digest = hashlib.sha256(repr(calls).encode()).hexdigest()
        digest_key = tenant.key("bot-registration", tenant.config.bot.bot_id)
        limiter = BotLimiter(self.redis, bot_rate_key(tenant), TELEGRAM_BOT_RATE)
        delay = RETRY_FIRST_DELAY
        attempt = 0
        while True:
            attempt += 1
            try:
                if await self.redis.get(digest_key) == digest:
                    tenant.log.info("bot_registration_unchanged", mode=tenant.config.bot.mode)
                else:
                    for method, params in calls:
                        await limiter.acquire(notice=True)
                        await self._call(tenant, method, params)
                    await self.redis.set(digest_key, digest, ex=REGISTRATION_TTL_SECONDS)
                    tenant.log.info("bot_registered", mode=tenant.config.bot.mode, attempts=attempt)
                if self.public_url is not None or tenant.config.bot.mode == "polling":
                    await self.redis.set(
                        f"{digest_key}:source", self._memo(tenant), ex=REGISTRATION_TTL_SECONDS
                    )
                if tenant.state == TenantState.RETRYING:
                    tenant.state = TenantState.RUNNING
                if self.public_url is not None or tenant.config.bot.mode == "polling":
                    tenant.detail = ""
                return
            except (TelegramNetworkError, TelegramAPIError, OSError, *STORAGE_UNAVAILABLE) as exc:
                wait = delay
                if isinstance(exc, TelegramRetryAfter):
                    wait = float(exc.retry_after)
                    with contextlib.suppress(*STORAGE_UNAVAILABLE):
                        await limiter.pause(wait)
                else:
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                if tenant.state in (TenantState.RUNNING, TenantState.RETRYING):
                    tenant.state = TenantState.RETRYING
                tenant.detail = f"Bot API registration failed (attempt {attempt}): {exc}; retrying in {wait:.0f} s"
                tenant.log.warning(
                    "bot_registration_failed", attempt=attempt, error=str(exc), retry_in=wait
                )
                await asyncio.sleep(wait)

    async def _poll(self, tenant: Tenant) -> None:
        """Poll ``tenant``'s bot while this runtime holds its polling lock, until cancelled.

        Telegram allows one getUpdates consumer per bot, so among runtimes
        sharing this Redis only the holder of the lock polls. Polling that
        cannot start (getMe fails while the Bot API is unreachable) is logged
        as one ``polling_failed`` warning per attempt and retried with the
        registration's backoff (1, 2, 4 ... 60 s); once running, aiogram
        retries getUpdates itself, one log line per retry.
        """
        # aiogram's own polling log lines run in this task: make them name the tenant.
        structlog.contextvars.bind_contextvars(tenant=tenant.id)
        lock = self.redis.lock(tenant.key("polling-lock"), timeout=POLLING_LOCK_SECONDS)
        delay, attempt = RETRY_FIRST_DELAY, 0
        while True:
            if not await lock.acquire(blocking=False):
                await asyncio.sleep(POLLING_LOCK_SECONDS / 3)
                continue
            tenant.log.info("polling_lock_acquired")
            attempt += 1
            started = asyncio.get_running_loop().time()
            polling = asyncio.create_task(
                tenant.dispatcher.start_polling(
                    tenant.bot,
                    handle_signals=False,
                    close_bot_session=False,
                    # One update after the other, confirmed only once all of a batch were
                    # handled: a poller killed mid-batch leaves them to the next one.
                    handle_as_tasks=False,
                    polling_timeout=POLLING_TIMEOUT_SECONDS,
                )
            )
            try:
                while not polling.done():
                    await asyncio.wait({polling}, timeout=POLLING_LOCK_SECONDS / 3)
                    if not polling.done():
                        await lock.extend(POLLING_LOCK_SECONDS, replace_ttl=True)
            except (LockError, OSError):
                tenant.log.warning("polling_lock_lost")
            finally:
                if not polling.done():
                    await tenant.dispatcher.stop_polling()
                    with contextlib.suppress(Exception):
                        await polling
                with contextlib.suppress(LockError, OSError):
                    await lock.release()
            error = None if polling.cancelled() else polling.exception()
            if asyncio.get_running_loop().time() - started > RETRY_MAX_DELAY:
                delay, attempt = RETRY_FIRST_DELAY, 1
            if error is not None:
                tenant.log.warning(
                    "polling_failed",
                    attempt=attempt,
                    error=str(error) or type(error).__name__,
                    retry_in=delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)
