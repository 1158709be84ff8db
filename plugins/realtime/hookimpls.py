"""Hook implementations of the realtime plugin: the only module pluggy sees (wiring only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import hookimpl
from plugins.realtime.config import RealtimeSettings

if TYPE_CHECKING:
    from core import DomainEvent, JobSpec, Tenant
    from core.web.pages import WebPages


@hookimpl
def register_settings() -> type[RealtimeSettings]:
    """``features.realtime`` is validated by :class:`RealtimeSettings`."""
    return RealtimeSettings


@hookimpl
def register_route_handlers() -> list[Any]:
    """Tickets, the WebSocket and the webhooks' state (:mod:`plugins.realtime.api`)."""
    from plugins.realtime.api import RealtimeController

    return [RealtimeController]


@hookimpl
def register_web_pages() -> WebPages:
    """The pages' ticket route (:mod:`plugins.realtime.web`)."""
    from plugins.realtime.web import web_pages

    return web_pages()


@hookimpl
def register_jobs() -> list[JobSpec]:
    """``realtime.webhook``: one delivery attempt of an outgoing webhook."""
    from core import JobSpec
    from plugins.realtime import webhooks

    return [JobSpec(name=webhooks.JOB, function=webhooks.deliver, timeout=30)]


@hookimpl
async def on_tenant_started(tenant: Tenant) -> None:
    """Count the tenant on this runtime's live hub (the first one starts it)."""
    from plugins.realtime.hub import Hub

    await Hub.of(tenant.plain_redis).acquire()


@hookimpl
async def on_tenant_stopped(tenant: Tenant) -> None:
    """Uncount the tenant (the last one stops the hub)."""
    from plugins.realtime.hub import Hub

    await Hub.of(tenant.plain_redis).release()


@hookimpl
async def on_event(tenant: Tenant, event: DomainEvent) -> None:
    """Append the event to its topics, push it live to every runtime, queue webhooks."""
    from plugins.realtime.feed import Feed
    from plugins.realtime.hub import Hub
    from plugins.realtime.topics import topics_of
    from plugins.realtime.webhooks import queue_deliveries

    settings: RealtimeSettings = tenant.settings_for("realtime")
    feed = Feed(tenant, settings.history_count, settings.history_seconds)
    hub = Hub.of(tenant.plain_redis)
    for topic in topics_of(event):
        appended = await feed.append(topic, event)
        if appended is not None:
            # Pushed again on a redelivery too: the runtime that appended it may
            # have died before pushing; subscribers skip ids they already have.
            await hub.publish(feed.channel(topic), appended[0])
    await queue_deliveries(tenant, settings, event)
