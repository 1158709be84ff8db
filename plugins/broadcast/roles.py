"""Who may send campaigns: the one place the plugin asks the core's roles.

``features.broadcast.senders`` names roles (default ``[admin]``). In the bot
the core's outer middleware puts the resolved :class:`core.actors.Actor` into
handler data as ``actor``; while a runtime does not (or for an update it has
not resolved), ``admin`` falls back to ``bot.admins``, which is what the core
grants ``admin`` to. Over HTTP a tenant API key acts as ``admin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.filters import Filter

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["Senders", "may_send"]


def may_send(tenant: Tenant, user_id: int | None, actor: Any = None) -> bool:
    """True when ``user_id`` (or the resolved ``actor``) holds one of the tenant's sender roles."""
    roles = tenant.settings_for("broadcast").senders
    if actor is not None and hasattr(actor, "has_role"):
        return bool(actor.has_role(*roles))
    return "admin" in roles and tenant.is_admin(user_id)


class Senders(Filter):
    """aiogram filter: the update's user may run ``/broadcast`` and ``/subscribers``."""

    async def __call__(self, event: Any, tenant: Tenant, actor: Any = None) -> bool:
        user = getattr(event, "from_user", None)
        return may_send(tenant, user.id if user else None, actor)
