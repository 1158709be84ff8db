"""Sign-in links the bots send to admins and partners (``/panel``, ``/storepanel``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from core.web.mount import plugins_of, public_url_of
from core.web.sessions import LINK_SECONDS, issue_link

if TYPE_CHECKING:
    from core.runtime.tenant import Tenant

__all__ = ["LINK_SECONDS", "signin_link", "site_url"]

FALLBACK_URL = "http://127.0.0.1:8000"
"""Where links point when the runtime has no ``TENANTRY_PUBLIC_URL`` (a local ``tenantry run``)."""


def site_url(tenant: Tenant) -> str:
    """The public base URL of the runtime serving ``tenant``, or :data:`FALLBACK_URL`."""
    return public_url_of(plugins_of(tenant)) or FALLBACK_URL


async def signin_link(
    tenant: Tenant, user_id: int, page: str, user: dict[str, Any] | None = None
) -> str:
    """A one-time URL signing Telegram user ``user_id`` in and opening ``page``.

    Args:
        tenant: the tenant.
        user_id: who the bot sends it to; their roles are resolved when they use it.
        page: the page under ``/web/<tenant id>/`` (``booking/admin``, ``orders/partner/bakery``).
        user: the Telegram user's fields, shown on the pages.

    Returns:
        ``<public URL>/web/<tenant id>/signin/link?token=...``, valid for
        :data:`LINK_SECONDS` seconds, once.
    """
    next_path = f"/web/{tenant.id}/{page.lstrip('/')}"
    token = await issue_link(tenant, user_id, next_path, user)
    return f"{site_url(tenant)}/web/{quote(tenant.id)}/signin/link?token={token}"
