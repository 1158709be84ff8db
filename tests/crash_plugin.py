"""Two tiny plugins, ``alpha`` and ``beta``, for the kill -9 test of durable events (test_core_events_crash).

Both record each event they handle by RPUSHing ``"<plugin>:<event id>"`` to
the Redis list named by ``CRASH_LIST``. With ``CRASH_HANG=1`` in the
environment, alpha never returns from an event titled ``hang``: the process
is killed while the event is in its hands; likewise its bot command
``/hang`` never returns (and ``/hang`` answers "unhung" without it). Alpha also serves
``POST /api/tenants/{tenant_id}/alpha/publish`` (API key), which publishes
``alpha.poked`` in a transaction and answers the event id.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from litestar import post

from core import hookimpl
from core.http.auth import TenantDep, require_api_key


async def _record(tenant: Any, plugin: str, event: Any) -> None:
    await tenant.redis.rpush(os.environ["CRASH_LIST"], f"{plugin}:{event.id}")


class Alpha:
    """Publishes through its route; hangs on ``hang`` when ``CRASH_HANG=1``."""

    @hookimpl
    def register_route_handlers(self) -> list[Any]:
        """``POST /publish`` with ``{"title": ...}``."""

        @post("/publish", guards=[require_api_key])
        async def publish(data: dict[str, str], tenant: TenantDep) -> dict[str, str]:
            async with tenant.db.transaction() as conn:
                event = await tenant.publish("alpha.poked", {"title": data["title"]}, conn=conn)
            return {"id": event.id}

        return [publish]

    @hookimpl
    def register_routers(self, tenant: Any) -> Any:
        """``/hang``: hangs forever with ``CRASH_HANG=1``, else answers "unhung"."""
        from aiogram import Router
        from aiogram.filters import Command
        from aiogram.types import Message

        router = Router(name=f"alpha:{tenant.id}")

        @router.message(Command("hang"))
        async def hang(message: Message) -> None:
            if os.environ.get("CRASH_HANG") == "1":
                await asyncio.sleep(3600)
            await message.answer("unhung")

        return router

    @hookimpl
    async def on_event(self, tenant: Any, event: Any) -> None:
        """Record the event (after hanging forever on ``hang`` with ``CRASH_HANG=1``)."""
        if os.environ.get("CRASH_HANG") == "1" and event.payload.get("title") == "hang":
            await asyncio.sleep(3600)
        await _record(tenant, "alpha", event)


class Beta:
    """Records every event at once."""

    @hookimpl
    async def on_event(self, tenant: Any, event: Any) -> None:
        """Record the event."""
        await _record(tenant, "beta", event)
