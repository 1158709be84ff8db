"""The realtime plugin's part of the web pages: tickets for a signed-in staff session.

The pages' realtime client (``/web/static/core/live.js``) cannot send an API
key or init data from a session cookie, so this route trades the session for
the same single-use ticket ``POST /api/tenants/{id}/realtime/tickets`` gives,
listing the topics the session's actor may follow (an admin every topic, a
partner its stores' ``orders:<store>``).
"""

from __future__ import annotations

from core.web.pages import WebPages

__all__ = ["web_pages"]


def web_pages() -> WebPages:
    """The ticket route ``POST /web/{tenant_id}/realtime/ticket``."""
    from plugins.realtime.web.pages import RealtimePages

    return WebPages(route_handlers=(RealtimePages,))
