"""Partners' and admins' commands in the bot: ``/storepanel``, a one-time link to the live order panel."""

from __future__ import annotations

from aiogram.types import Message

from core import Actor, Tenant
from plugins.orders.service import settings_of

__all__ = ["store_panel"]


async def store_panel(message: Message, tenant: Tenant, actor: Actor) -> None:
    """``/storepanel`` (partners, admins; private chat): a one-time link to the live order panel."""
    from aiogram.types import LinkPreviewOptions

    from core.web.links import LINK_SECONDS, signin_link

    if message.chat.type != "private":
        await message.answer(tenant.text("orders.web.panel_private"))
        return
    stores = [
        s
        for s in settings_of(tenant).stores
        if actor.has_role("admin") or actor.allows("partner", "store", s.id)
    ]
    if not stores:
        await message.answer(tenant.text("orders.web.panel_none"))
        return
    user = message.from_user
    fields = {"first_name": user.first_name, "last_name": user.last_name, "username": user.username}
    page = f"orders/partner/{stores[0].id}" if len(stores) == 1 else "orders/partner"
    url = await signin_link(tenant, user.id, page, {k: v for k, v in fields.items() if v})
    name = stores[0].name if len(stores) == 1 else tenant.config.name
    await message.answer(
        tenant.text("orders.web.panel_link", store=name, url=url, minutes=LINK_SECONDS // 60),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
