"""Single-use connection tickets: credentials traded for a short-lived token a WebSocket URL may carry.

A ticket is a random token stored under the tenant's Redis prefix with the
topics its holder may follow, for ``ticket_seconds``. Opening the socket
redeems it with ``GETDEL``: a ticket works once, for its own tenant only.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from core import Tenant

__all__ = ["Ticket", "issue", "redeem"]

_TOKEN = re.compile(r"^rt_[A-Za-z0-9_-]{32}$")


class Ticket(msgspec.Struct, frozen=True):
    """What a ticket grants.

    Attributes:
        topics: the topics its holder may subscribe to.
        who: who asked for it (``api_key:<name>``, ``webapp:<user id>``), for logs.
        session_key: for a staff page's ticket, the Redis key of its web
            session: the connection ends when the session does (checked at
            every ping). Empty for API keys and WebApp init data.
    """

    topics: list[str]
    who: str
    session_key: str = ""


def _key(tenant: Tenant, token: str) -> str:
    return tenant.key("realtime", "ticket", token)


async def issue(tenant: Tenant, ticket: Ticket, ttl_seconds: int) -> str:
    """Store ``ticket`` for ``ttl_seconds``; return its token (``rt_`` and 32 URL-safe characters)."""
    token = "rt_" + secrets.token_urlsafe(24)
    await tenant.redis.set(_key(tenant, token), msgspec.json.encode(ticket), ex=ttl_seconds)
    return token


async def redeem(tenant: Tenant, token: str) -> Ticket | None:
    """Take the ticket ``token`` (it works once); None when missing, malformed, used or expired."""
    if not _TOKEN.match(token):
        return None
    raw = await tenant.redis.getdel(_key(tenant, token))
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=Ticket)
    except msgspec.DecodeError:
        return None
