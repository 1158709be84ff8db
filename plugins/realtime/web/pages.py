"""``POST /web/{tenant_id}/realtime/ticket``: a WebSocket ticket for a staff session."""

from __future__ import annotations

from litestar import Controller, Request, post

from core.errors import Forbidden
from core.http.auth import ActorDep, TenantDep
from core.web.auth import require_staff
from core.web.sessions import SESSION_COOKIE, session_key
from plugins.realtime import tickets, topics
from plugins.realtime.api import FEATURE, TicketOut

__all__ = ["RealtimePages"]


class RealtimePages(Controller):
    """Tickets for the pages' realtime client."""

    path = "/"

    @post("/ticket", guards=[require_staff], status_code=201)
    async def ticket(self, request: Request, tenant: TenantDep, actor: ActorDep) -> TicketOut:
        """A single-use ticket for ``/api/tenants/{id}/realtime/ws`` (as ``POST /tickets``).

        Raises:
            Forbidden: 403 ``realtime.forbidden``, the session may follow no topic.
        """
        allowed = topics.allowed_topics(tenant, actor)
        if not allowed:
            raise Forbidden("realtime.forbidden", "live events are for admins and partners")
        settings = tenant.settings_for(FEATURE)
        who = f"web:{actor.key_name or actor.user_id or actor.via}"
        # The socket lives as long as the session that asked for it.
        session = session_key(tenant, request.cookies.get(SESSION_COOKIE)) or ""
        token = await tickets.issue(
            tenant,
            tickets.Ticket(topics=allowed, who=who, session_key=session),
            settings.ticket_seconds,
        )
        return TicketOut(ticket=token, expires_in=settings.ticket_seconds, topics=allowed)
