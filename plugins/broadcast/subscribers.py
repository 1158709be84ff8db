"""Subscribers: opt in on ``/start`` (or ``/subscribe``), out with ``/stop`` or the button.

Telegram unsubscribes people too: a campaign send answered 403 (bot blocked,
user deactivated) or 400 "chat not found" makes the subscriber ``blocked``
with the reason and time (:mod:`plugins.broadcast.engine`). ``/start`` after
that brings them back, since it means they talk to the bot again; someone
who chose to leave with ``/stop`` comes back only with ``/subscribe``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugins.broadcast import repository as repo
from plugins.broadcast.audiences import members_filter, segment_choices, segments_of

if TYPE_CHECKING:
    from aiogram.types import User

    from core import Tenant

__all__ = ["LEFT_BY_TELEGRAM", "leave", "stats", "subscribe_user"]

LEFT_BY_TELEGRAM = ("blocked", "chat_not_found")
"""``left_reason`` values set by Telegram's answers rather than by the user."""
LEFT_BY_CHOICE = ("stop", "button")


def _clean(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL (U+0000).
    return text.replace("\x00", "") if text else text


async def subscribe_user(tenant: Tenant, user: User, *, explicit: bool) -> bool:
    """Subscribe the Telegram ``user``; True when they are active afterwards.

    Args:
        explicit: ``/subscribe`` (brings back anyone) rather than ``/start``
            (brings back only those Telegram unsubscribed).
    """
    rejoin = LEFT_BY_TELEGRAM + (LEFT_BY_CHOICE if explicit else ())
    async with tenant.db.acquire() as conn:
        return await repo.subscribe(
            conn,
            user.id,
            first_name=_clean(user.first_name) or "",
            username=user.username,
            language_code=user.language_code,
            source="start",
            rejoin=rejoin,
        )


async def leave(tenant: Tenant, user_id: int, reason: str) -> bool:
    """Unsubscribe by the user's choice (``stop`` or ``button``); True when they were subscribed."""
    async with tenant.db.acquire() as conn:
        return await repo.unsubscribe(conn, user_id, status="unsubscribed", reason=reason)


async def stats(tenant: Tenant) -> dict[str, Any]:
    """Counts for ``/subscribers`` and the API.

    Returns:
        ``{"by_status": {"active": n, "unsubscribed": n, "blocked": n},
        "by_language": [(code, n), ...], "segments": [(name, title, params, n), ...]}``
        (segments: every preset of every segment the tenant's plugins offer).
    """
    segments = await segments_of(tenant)
    async with tenant.db.transaction() as conn:
        by_status = await repo.subscriber_counts(conn)
        by_language = await repo.language_counts(conn)
        rows = []
        for audience, title in segment_choices(segments):
            _, members = await members_filter(tenant, conn, audience)
            count = await repo.count_active(conn, None, members)
            rows.append((audience["segment"], title, audience["params"], count))
    return {"by_status": by_status, "by_language": by_language, "segments": rows}
