"""HTTP and WebSocket routes of the realtime plugin, under ``/api/tenants/{tenant_id}/realtime``.

* ``POST /tickets`` (an API key, a scoped partner key, or WebApp init data of
  an admin or partner): a single-use ticket for the socket.
* ``GET /ws?ticket=...``: the WebSocket (protocol in docs/plugins/realtime.md).
* ``GET /webhooks`` (admin API key): the outgoing webhooks' state.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, WebSocket, get, post, websocket

from core.errors import Forbidden
from core.http.auth import (
    ActorDep,
    TenantDep,
    require_api_key,
    require_api_key_or_webapp,
    require_role,
    resolve_tenant,
)
from plugins.realtime import tickets, topics, webhooks
from plugins.realtime.session import Session

__all__ = ["RealtimeController", "TicketOut", "WebhookState"]

FEATURE = "realtime"
TICKET_REFUSED_CODE = 4403
"""Close code of a socket refused before the upgrade (the HTTP answer is 403)."""


class TicketOut(msgspec.Struct, frozen=True):
    """A connection ticket.

    Attributes:
        ticket: pass it as ``?ticket=`` to ``/ws``; works once.
        expires_in: seconds it stays valid.
        topics: the topics its holder may subscribe to.
    """

    ticket: str
    expires_in: int
    topics: list[str]


class WebhookState(msgspec.Struct, frozen=True):
    """One outgoing webhook endpoint's delivery state.

    Attributes:
        endpoint: its index in ``features.realtime.webhooks``.
        url: where events are POSTed.
        events: the event name patterns it receives.
        delivered / retried / given_up: attempts by outcome since the counts began.
        last_error: the last failure (``HTTP 500``, ``ClientConnectorError: ...``).
        last_error_at / last_delivered_at: Unix seconds.
    """

    endpoint: int
    url: str
    events: list[str]
    delivered: int
    retried: int
    given_up: int
    last_error: str | None = None
    last_error_at: int | None = None
    last_delivered_at: int | None = None


def _who(actor: Any) -> str:
    if actor.key_name:
        return f"api_key:{actor.key_name}"
    return f"{actor.via}:{actor.user_id}" if actor.user_id is not None else actor.via


class RealtimeController(Controller):
    """Tickets, the WebSocket and the webhooks' state."""

    path = "/"

    @post("/tickets", guards=[require_api_key_or_webapp], status_code=201, summary="Get a ticket")
    async def ticket(self, tenant: TenantDep, actor: ActorDep) -> TicketOut:
        """A single-use ticket for ``/ws``, listing the topics the caller may follow.

        Raises:
            Forbidden: 403 ``realtime.forbidden``, the caller is neither an
                admin nor a partner.
        """
        allowed = topics.allowed_topics(tenant, actor)
        if not allowed:
            raise Forbidden("realtime.forbidden", "live events are for admins and partners")
        settings = tenant.settings_for(FEATURE)
        token = await tickets.issue(
            tenant, tickets.Ticket(topics=allowed, who=_who(actor)), settings.ticket_seconds
        )
        return TicketOut(ticket=token, expires_in=settings.ticket_seconds, topics=allowed)

    @websocket("/ws")
    async def socket(self, socket: WebSocket[Any, Any, Any]) -> None:
        """The live event stream; refused (403, no upgrade) without a valid ticket."""
        tenant = resolve_tenant(socket, FEATURE)
        ticket = await tickets.redeem(tenant, socket.query_params.get("ticket", ""))
        if ticket is None:
            tenant.log.info("realtime_ticket_refused")
            await socket.close(code=TICKET_REFUSED_CODE, reason="missing, used or expired ticket")
            return
        await socket.accept()
        settings = tenant.settings_for(FEATURE)
        await Session(socket, tenant, settings, ticket, topics.all_topics(tenant)).run()

    @get("/webhooks", guards=[require_api_key, require_role("admin")], summary="Webhook state")
    async def webhook_states(self, tenant: TenantDep) -> list[WebhookState]:
        """Each outgoing webhook endpoint's counts and last error."""
        states = await webhooks.endpoint_states(tenant, tenant.settings_for(FEATURE))
        return [WebhookState(**state) for state in states]
