"""aiogram wiring: one Bot and Dispatcher per tenant, one shared HTTP session.

* All bots share one :class:`AiohttpSession` pointed at ``TENANTRY_BOT_API_URL``
  with :meth:`TelegramAPIServer.from_base`.
* FSM state lives in aiogram's ``RedisStorage`` with
  ``DefaultKeyBuilder(prefix=<tenant prefix>fsm, with_bot_id=True)``
  (:mod:`core.updates.fsm`).
* Every handler and filter gets ``tenant`` and ``db`` as aiogram workflow data
  (``Dispatcher(**kwargs)``). An outer middleware resolves the update's
  ``actor`` (:class:`core.actors.Actor`) once, for handlers and role filters.
* Registration with the Bot API (setWebhook, setMyCommands, only when changed)
  is :mod:`core.updates.registration`; polling, one poller per bot across
  runtimes, is :mod:`core.updates.polling`. Both webhook and polled updates go
  through :func:`core.updates.protocol.deliver`.
* A Bot API outage is logged as one warning line per retry or failed answer,
  without a traceback (``bot_registration_failed``, ``polling_failed``,
  ``bot_api_unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, TelegramObject, Update

from core.actors import resolve_actor
from core.updates.dedupe import UpdateLedger
from core.updates.fsm import install_fsm
from core.updates.polling import poll
from core.updates.protocol import Outcome, deliver
from core.updates.registration import Registrar

if TYPE_CHECKING:
    from core.runtime.lifecycle import Lifecycle
    from core.runtime.tenant import CommandSpec, Tenant

__all__ = ["BotHub", "pin_response_models", "webhook_secret"]

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
            new one registers every bot again (:class:`~core.updates.registration.Registrar`).
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
        self.redis = redis
        self.ledger = ledger
        self.session = AiohttpSession(api=TelegramAPIServer.from_base(bot_api_url.rstrip("/")))
        self.public_url = public_url.rstrip("/") if public_url else None
        self.secret_key = secret_key
        self.registrar = Registrar(redis, self.public_url, self.secret_for, code)
        self._tasks: dict[int, list[asyncio.Task[None]]] = {}

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
        # ``tenant`` and ``db`` reach every handler and filter as aiogram workflow data.
        dispatcher = Dispatcher(
            disable_fsm=True, name=f"tenant:{tenant.id}", tenant=tenant, db=tenant.db
        )
        install_fsm(dispatcher, self.redis, tenant.redis_prefix)
        dispatcher.update.outer_middleware(_ActorContext(tenant))
        if any(c.roles for c in tenant.commands):
            dispatcher.message.outer_middleware(_RoleCommandGate(tenant, tenant.commands))
        dispatcher.include_routers(*routers, _outage_router(tenant))
        tenant.dispatcher = dispatcher

    def unload(self, tenant: Tenant) -> None:
        """Drop ``tenant``'s Dispatcher and routers (idle); :meth:`build` makes them again."""
        tenant.dispatcher = None  # type: ignore[assignment]

    async def registered(self, tenant: Tenant) -> bool:
        """True when the bot's registration is current (:meth:`Registrar.registered`)."""
        return await self.registrar.registered(tenant)

    async def registered_all(self, tenants: Sequence[Tenant]) -> list[bool]:
        """:meth:`registered` for each of ``tenants``, in Redis pipelines (:meth:`Registrar.registered_all`)."""
        return await self.registrar.registered_all(tenants)

    def start(self, tenant: Tenant, commands: list[CommandSpec], lifecycle: Lifecycle) -> None:
        """Start background registration (webhook) or registration and polling for ``tenant``.

        Args:
            tenant: a tenant with its Dispatcher built.
            commands: its commands.
            lifecycle: the registry's lifecycle of ``tenant`` (registration
                moves it between running and retrying).
        """
        tasks = [
            asyncio.create_task(
                self.registrar.register(tenant, commands, lifecycle), name=f"register:{tenant.id}"
            )
        ]
        if tenant.config.bot.mode == "polling":
            tasks.append(
                asyncio.create_task(
                    poll(tenant, self.redis, self._deliver_polled), name=f"poll:{tenant.id}"
                )
            )
        self._tasks[id(tenant)] = tasks

    async def _deliver_polled(self, tenant: Tenant, update: Update) -> Outcome:
        return await deliver(tenant, update, self.ledger, _built, take_over=True)

    def register_later(
        self,
        tenant: Tenant,
        assemble: Callable[[Tenant], Awaitable[None]],
        lifecycle: Lifecycle,
    ) -> None:
        """Build ``tenant``'s bot, register it and drop it again, in the background.

        For a webhook tenant started without its Dispatcher whose registration
        is not current (a first start, a changed file); see
        :meth:`core.updates.registration.Registrar.build_and_register`.
        """
        task = asyncio.create_task(
            self.registrar.build_and_register(tenant, assemble, lifecycle, self.unload),
            name=f"register:{tenant.id}",
        )
        self._tasks[id(tenant)] = [task]

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
            await self.registrar.forget(tenant)
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


async def _built(tenant: Tenant) -> None:
    """``assemble`` of polled updates: a polling tenant's Dispatcher is built before it polls."""
    raise RuntimeError(f"polling tenant {tenant.id!r} has no Dispatcher")
