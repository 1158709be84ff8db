"""Bot API registration of a tenant's bot: setWebhook or deleteWebhook, setMyCommands and the WebApp menu button, only when changed.

Webhook tenants register with setWebhook in the background, retrying with
exponential backoff while the Bot API is unreachable (one
``bot_registration_failed`` warning per attempt, no traceback). What was
registered is remembered in Redis (:data:`REGISTRATION_TTL_SECONDS`) as a
digest of the calls, so a restart or another runtime calls setWebhook /
setMyCommands only when what they would set changed; each call takes a slot
of the bot's send budget (:class:`core.updates.limiter.BotLimiter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import BotCommand, BotCommandScopeChat, MenuButtonWebApp, WebAppInfo

from core.errors import STORAGE_UNAVAILABLE
from core.runtime.lifecycle import TenantState
from core.updates.limiter import TELEGRAM_BOT_RATE, BotLimiter, bot_rate_key

if TYPE_CHECKING:
    from core.runtime.lifecycle import Lifecycle
    from core.runtime.tenant import CommandSpec, Tenant

__all__ = ["REGISTERED_BATCH", "REGISTRATION_TTL_SECONDS", "Registrar"]

log = structlog.get_logger("tenantry.bots")

RETRY_FIRST_DELAY = 1.0
"""First wait after a failed registration, seconds; doubled at each failure up to :data:`RETRY_MAX_DELAY`."""
RETRY_MAX_DELAY = 60.0
"""Longest wait between registration attempts, seconds."""
REGISTRATION_TTL_SECONDS = 24 * 3600
"""What a bot was registered with is remembered this long (then set again once), seconds."""
REGISTERED_BATCH = 1000
"""GETs per Redis pipeline when a start reads many bots' registrations (:meth:`Registrar.registered_all`)."""
REGISTER_CONCURRENCY = 16
"""Lazy webhook tenants built and registered at once in the background (bounds the memory
of a first start with thousands of tenants: each is dropped again once registered)."""


class Registrar:
    """Registers the bots of a runtime's tenants with the Bot API.

    Args:
        redis: the shared Redis client (registration digests, send budgets).
        public_url: this runtime's external base URL for setWebhook, or None.
        secret_for: the tenant's webhook secret (:meth:`core.updates.bots.BotHub.secret_for`).
        code: names this release's code (package version and plugins): a
            new one registers every bot again, since its routers may use
            other update types or commands.
    """

    def __init__(
        self,
        redis: Any,
        public_url: str | None,
        secret_for: Callable[[Tenant], str],
        code: str = "",
    ):
        self.redis = redis
        self.public_url = public_url
        self.secret_for = secret_for
        self.code = code
        self.building = asyncio.Semaphore(REGISTER_CONCURRENCY)

    def memo(self, tenant: Tenant) -> str:
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
            return await self.redis.get(key) == self.memo(tenant)
        except STORAGE_UNAVAILABLE:
            return False

    async def registered_all(self, tenants: Sequence[Tenant]) -> list[bool]:
        """:meth:`registered` for each of ``tenants``, read in Redis pipelines, not a GET each.

        Pipelines of :data:`REGISTERED_BATCH` GETs (a cluster client splits
        each by node). All False while Redis is unreachable.
        """
        answers: list[bool] = []
        if not tenants:
            return answers
        try:
            for first in range(0, len(tenants), REGISTERED_BATCH):
                batch = tenants[first : first + REGISTERED_BATCH]
                pipe = self.redis.pipeline(transaction=False)
                for tenant in batch:
                    pipe.get(tenant.key("bot-registration", tenant.config.bot.bot_id, "source"))
                stored = await pipe.execute()
                answers.extend(
                    value == self.memo(tenant) for tenant, value in zip(batch, stored, strict=True)
                )
        except STORAGE_UNAVAILABLE:
            return [False] * len(tenants)
        return answers

    async def forget(self, tenant: Tenant) -> None:
        """Forget what ``tenant``'s bot was registered with (it was removed; re-adding registers again)."""
        key = tenant.key("bot-registration", tenant.config.bot.bot_id)
        with contextlib.suppress(*STORAGE_UNAVAILABLE):
            await self.redis.delete(key, f"{key}:source")

    def calls(self, tenant: Tenant, commands: list[CommandSpec]) -> list[tuple[str, dict]]:
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
        webapp = self.webapp_url(tenant)
        if webapp is not None:
            button = {"type": "web_app", "text": tenant.text("webapp.menu_button"),
                      "web_app": {"url": webapp}}  # fmt: skip
            calls.append(("setChatMenuButton", {"menu_button": button}))
        return calls

    def webapp_url(self, tenant: Tenant) -> str | None:
        """The URL of ``tenant``'s ``webapp.url`` for its bot's menu button, or None.

        An absolute ``https://`` URL is used as written; a path (``/web/<id>/booking/app``)
        is joined to ``TENANTRY_PUBLIC_URL`` when that is HTTPS. Telegram opens
        WebApps over HTTPS only (Bot API: WebAppInfo.url), so with a plain-HTTP
        public URL there is no menu button.
        """
        url = tenant.config.webapp.url
        if url.startswith("/"):
            if not (self.public_url or "").startswith("https://"):
                return None
            url = f"{self.public_url}{url}"
        return url if url.startswith("https://") else None

    async def _call(self, tenant: Tenant, method: str, params: dict) -> None:
        """Make one registration call (see :meth:`calls`) through aiogram."""
        bot = tenant.bot
        if method == "setWebhook":
            await bot.set_webhook(**params)
        elif method == "deleteWebhook":
            await bot.delete_webhook()
        elif method == "setChatMenuButton":
            button = params["menu_button"]
            await bot.set_chat_menu_button(
                menu_button=MenuButtonWebApp(
                    text=button["text"], web_app=WebAppInfo(url=button["web_app"]["url"])
                )
            )
        else:
            scope = BotCommandScopeChat(chat_id=params["chat_id"]) if "chat_id" in params else None
            await bot.set_my_commands([BotCommand(**c) for c in params["commands"]], scope=scope)

    async def register(
        self, tenant: Tenant, commands: list[CommandSpec], lifecycle: Lifecycle
    ) -> None:
        """Register ``tenant``'s bot, retrying until the Bot API answers.

        What was registered is remembered in Redis under
        ``<prefix>bot-registration:<bot id>`` as a digest of the calls (for
        :data:`REGISTRATION_TTL_SECONDS`): when the calls a restart or another
        runtime would make have that digest, none is made. Each call waits
        for a slot of the bot's send budget; a 429 answer pauses every sender
        of the bot for its ``retry_after`` (Bot API ``ResponseParameters``).

        Args:
            tenant: a tenant with its Dispatcher built.
            commands: its commands (``register_commands``).
            lifecycle: the registry's lifecycle of ``tenant``: moved to
                ``retrying`` (with the error) while the Bot API fails, and
                back to ``running`` once registered.
        """
        # Log lines of this task (aiogram's too) name the tenant.
        structlog.contextvars.bind_contextvars(tenant=tenant.id)
        if tenant.config.bot.mode == "webhook" and self.public_url is None:
            lifecycle.explain("webhook not registered: TENANTRY_PUBLIC_URL is not set")
        calls = self.calls(tenant, commands)
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
                registers = self.public_url is not None or tenant.config.bot.mode == "polling"
                if registers:
                    await self.redis.set(
                        f"{digest_key}:source", self.memo(tenant), ex=REGISTRATION_TTL_SECONDS
                    )
                if lifecycle.state == TenantState.RETRYING:
                    lifecycle.move(TenantState.RUNNING)
                elif registers:
                    lifecycle.explain("")
                return
            except (TelegramNetworkError, TelegramAPIError, OSError, *STORAGE_UNAVAILABLE) as exc:
                wait = delay
                if isinstance(exc, TelegramRetryAfter):
                    wait = float(exc.retry_after)
                    with contextlib.suppress(*STORAGE_UNAVAILABLE):
                        await limiter.pause(wait)
                else:
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                detail = f"Bot API registration failed (attempt {attempt}): {exc}; retrying in {wait:.0f} s"
                if lifecycle.serving:
                    lifecycle.move(TenantState.RETRYING, detail)
                else:
                    lifecycle.explain(detail)
                tenant.log.warning(
                    "bot_registration_failed", attempt=attempt, error=str(exc), retry_in=wait
                )
                await asyncio.sleep(wait)

    async def build_and_register(
        self,
        tenant: Tenant,
        assemble: Callable[[Tenant], Awaitable[None]],
        lifecycle: Lifecycle,
        unload: Callable[[Tenant], None],
    ) -> None:
        """Build ``tenant``'s bot, register it and drop it again if it got no update meanwhile.

        At most :data:`REGISTER_CONCURRENCY` are built at once, so a first
        start of thousands of tenants never holds all their bots. A plugin
        whose routers fail to build moves the tenant to ``failed``.
        """
        structlog.contextvars.bind_contextvars(tenant=tenant.id)
        async with self.building:
            try:
                await assemble(tenant)
            except Exception as exc:
                lifecycle.move(TenantState.FAILED, f"{type(exc).__name__}: {exc}")
                tenant.log.exception("tenant_assembly_failed")
                return
            built = tenant.last_used
            await self.register(tenant, tenant.commands, lifecycle)
        if tenant.last_used == built and not tenant.busy:
            unload(tenant)
