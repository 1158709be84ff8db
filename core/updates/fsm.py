"""FSM state of a tenant's bot: aiogram's RedisStorage under the tenant prefix, read with the update's claim.

The update protocol (:func:`core.updates.protocol.deliver`) reads an update's
FSM state in the same Redis round trip as its dedupe claim and hands it to
the Dispatcher as ``feed_update`` data (:data:`PREFETCHED_STATE`);
:class:`PrefetchedFSM`, the Dispatcher's FSM middleware, uses it instead of
asking the storage again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import TelegramObject, Update

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.runtime.tenant import Tenant

__all__ = ["PREFETCHED_STATE", "PrefetchedFSM", "fsm_state_key", "install_fsm"]

PREFETCHED_STATE = "tenantry_prefetched_state"
"""``feed_update`` data key: ``(redis key, value)`` of the FSM state read with the claim."""


class TenantStorage(RedisStorage):
    """aiogram's RedisStorage on the runtime's shared client, which a Dispatcher must not close."""

    async def close(self) -> None:
        """Keep the shared client open: the runtime closes it at shutdown."""


class PrefetchedFSM(FSMContextMiddleware):
    """aiogram's FSM middleware, taking the state the protocol read with the update's claim.

    When the update's data carries :data:`PREFETCHED_STATE` for the very key
    the FSM context resolves to, ``raw_state`` is that value and the storage
    is not asked; otherwise (polled before a claim, another key) it behaves
    exactly like aiogram's ``FSMContextMiddleware``. The Dispatcher runs
    without event isolation, so reading the state a moment earlier changes
    nothing.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        prefetched = data.pop(PREFETCHED_STATE, None)
        context = self.resolve_event_context(cast(Bot, data["bot"]), data)
        data["fsm_storage"] = self.storage
        if context is None:
            return await handler(event, data)
        storage = cast(RedisStorage, self.storage)
        if prefetched is not None and prefetched[0] == storage.key_builder.build(
            context.key, "state"
        ):
            raw_state = prefetched[1]
        else:
            raw_state = await context.get_state()
        data.update({"state": context, "raw_state": raw_state})
        return await handler(event, data)


def install_fsm(dispatcher: Dispatcher, redis: Redis, prefix: str) -> None:
    """Give ``dispatcher`` (built with ``disable_fsm=True``) its FSM: :class:`PrefetchedFSM`.

    State lives in aiogram's RedisStorage with ``DefaultKeyBuilder(prefix=<prefix>fsm,
    with_bot_id=True)``, registered after aiogram's ``UserContextMiddleware`` as
    aiogram registers its own.
    """
    fsm = PrefetchedFSM(
        storage=TenantStorage(
            redis, key_builder=DefaultKeyBuilder(prefix=f"{prefix}fsm", with_bot_id=True)
        ),
        events_isolation=DisabledEventIsolation(),
    )
    dispatcher.fsm = fsm
    dispatcher.update.outer_middleware(fsm)


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
    return cast(RedisStorage, tenant.dispatcher.fsm.storage).key_builder.build(fsm.key, "state")
