"""Staff sessions and one-time sign-in links, kept in the tenant's Redis.

* A **session** is a random token in an HttpOnly, SameSite=Lax cookie scoped
  to ``/web/{tenant_id}/``. Redis holds, under the tenant's prefix and the
  token's SHA-256 (a copy of Redis opens nothing), who signed in: a Telegram
  user (from a sign-in link or WebApp init data) or an API key (by the key's
  SHA-256). The actor is resolved again on every request, so a user removed
  from ``bot.admins`` or a partner list, or a key removed from ``api.keys``,
  loses the pages at once. A session lasts :data:`SESSION_SECONDS`.
* A **sign-in link** is a random token the bot sends to an admin or partner;
  it works once (``GETDEL``), within :data:`LINK_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any

import msgspec

from core.actors import Actor, Grant, resolve_actor

if TYPE_CHECKING:
    from core.runtime.tenant import Tenant

__all__ = [
    "LINK_SECONDS",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "SessionRecord",
    "actor_of",
    "end_session",
    "issue_link",
    "key_actor",
    "load_session",
    "redeem_link",
    "start_session",
]

SESSION_COOKIE = "tenantry_session"
"""Name of the session cookie (its path is ``/web/{tenant_id}/``, so tenants never share one)."""
SESSION_SECONDS = 8 * 3600
"""How long a staff session lasts from sign-in: a working day (8 hours)."""
LINK_SECONDS = 600
"""How long a sign-in link sent by the bot stays usable: 10 minutes."""


class SessionRecord(msgspec.Struct, frozen=True):
    """Who a session belongs to.

    Attributes:
        via: ``link`` or ``webapp`` (a Telegram user), ``api_key``.
        user_id: the Telegram user id (``link``, ``webapp``), else None.
        user: the Telegram user's fields (``first_name``...), for display.
        key_sha256: hex SHA-256 of the API key (``api_key``), else None.
        started_at: Unix seconds.
    """

    via: str
    user_id: int | None = None
    user: dict[str, Any] = {}
    key_sha256: str | None = None
    started_at: int = 0


class LinkRecord(msgspec.Struct, frozen=True):
    """What a sign-in link stands for: the Telegram user it was sent to and the page it opens."""

    user_id: int
    next_path: str
    user: dict[str, Any] = {}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(tenant: Tenant, record: SessionRecord) -> str:
    """Store ``record`` for :data:`SESSION_SECONDS`; return the cookie value (43 URL-safe chars)."""
    token = secrets.token_urlsafe(32)
    record = msgspec.structs.replace(record, started_at=int(time.time()))
    await tenant.redis.set(
        tenant.key("web", "session", _digest(token)),
        msgspec.json.encode(record),
        ex=SESSION_SECONDS,
    )
    return token


async def load_session(tenant: Tenant, token: str | None) -> SessionRecord | None:
    """The session of cookie value ``token``; None when missing, malformed or expired."""
    if not token or len(token) > 64:
        return None
    raw = await tenant.redis.get(tenant.key("web", "session", _digest(token)))
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=SessionRecord)
    except msgspec.DecodeError:
        return None


def session_key(tenant: Tenant, token: str | None) -> str | None:
    """The Redis key holding the session of cookie value ``token`` (None for no or a malformed token).

    For what lives as long as a session, such as a realtime connection that
    checks the key still exists (:mod:`plugins.realtime.session`).
    """
    if not token or len(token) > 64:
        return None
    return tenant.key("web", "session", _digest(token))


async def end_session(tenant: Tenant, token: str | None) -> None:
    """Forget the session of cookie value ``token`` (signing out)."""
    if token and len(token) <= 64:
        await tenant.redis.delete(tenant.key("web", "session", _digest(token)))


def key_actor(tenant: Tenant, key_sha256: str) -> Actor | None:
    """The actor of the tenant's API key whose SHA-256 is ``key_sha256``; None if it is gone.

    The same actor :mod:`core.http.auth` makes of the key (role, scope,
    ``read_only``, ``name``).
    """
    for entry in tenant.config.api.entries:
        if hmac.compare_digest(_digest(entry.key), key_sha256):
            return Actor(
                via="api_key",
                grants=(Grant(entry.role, entry.scope_values()),),
                key_name=entry.name,
                read_only=entry.read_only,
            )
    return None


def key_digest(tenant: Tenant, presented: str) -> str | None:
    """The SHA-256 of ``presented`` when it is one of the tenant's API keys, else None."""
    for entry in tenant.config.api.entries:
        if hmac.compare_digest(entry.key.encode(), presented.encode()):
            return _digest(entry.key)
    return None


async def actor_of(tenant: Tenant, record: SessionRecord) -> Actor | None:
    """The actor of a session now (roles resolved again); None when its key was removed."""
    if record.via == "api_key":
        return key_actor(tenant, record.key_sha256 or "")
    if record.user_id is None:
        return None
    return await resolve_actor(tenant, record.user_id, via="webapp", user=record.user)


async def issue_link(
    tenant: Tenant, user_id: int, next_path: str, user: dict[str, Any] | None = None
) -> str:
    """Store a sign-in link for Telegram user ``user_id`` opening ``next_path``; return its token."""
    token = secrets.token_urlsafe(24)
    record = LinkRecord(user_id=user_id, next_path=next_path, user=user or {})
    await tenant.redis.set(
        tenant.key("web", "link", _digest(token)), msgspec.json.encode(record), ex=LINK_SECONDS
    )
    return token


async def redeem_link(tenant: Tenant, token: str) -> LinkRecord | None:
    """Take the link ``token`` (it works once); None when missing, used or expired."""
    if not token or len(token) > 64:
        return None
    raw = await tenant.redis.getdel(tenant.key("web", "link", _digest(token)))
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=LinkRecord)
    except msgspec.DecodeError:
        return None
