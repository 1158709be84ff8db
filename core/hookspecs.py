"""Every hook a Tenantry plugin can implement, grouped by phase.

A plugin is a module (or object) whose functions are decorated with
:data:`core.hookimpl` and whose pluggy name is its feature key in the tenant
YAML (``features.<name>``). For one tenant, only the hooks of the plugins that
tenant enables are called; the always-on ``core`` plugin is the exception.

Hooks are plain functions. A hook that must do I/O may return an awaitable;
the core awaits whatever it gets back (see :func:`core.runtime.plugins.resolve`).
Plugin authors: ``docs/hooks.md`` documents each hook with an example.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    import msgspec
    from aiogram import Router

    from core.runtime.tenant import Tenant
    from core.storage.events import DomainEvent
    from core.storage.jobs import JobSpec
    from core.storage.migrations import Migration
    from core.storage.statuses import StatusEntity

hookspec = pluggy.HookspecMarker("tenantry")
hookimpl = pluggy.HookimplMarker("tenantry")


# ---------------------------------------------------------------- config


@hookspec
def register_settings() -> type[msgspec.Struct] | None:
    """Return the msgspec Struct that validates this plugin's ``features.<name>`` block.

    Called once per plugin when a tenant file is validated. The Struct should be
    declared ``frozen=True, forbid_unknown_fields=True`` so a misspelt setting is
    an error naming the file, line and field. An empty YAML value (``booking:``
    or ``booking: {}``) is converted as ``{}``, so every field needs a default
    or the integrator must write it.

    Returns:
        The Struct class, or None when the plugin has no settings.
    """


@hookspec
def register_status_machines() -> Sequence[StatusEntity] | None:
    """Declare the entities whose status this plugin keeps, with default machines.

    Called once per plugin when a tenant file is validated. The tenant's
    ``statuses.<entity>`` block overrides the default; the core validates the
    result, keeps a CHECK constraint on ``StatusEntity.table.column`` in the
    tenant schema in step with it and migrates ``renamed`` states.

    Returns:
        A sequence of :class:`core.storage.statuses.StatusEntity`.
    """


# ---------------------------------------------------------------- storage


@hookspec
def register_migrations() -> Path | Sequence[Migration] | None:
    """Return this plugin's SQL migrations for a tenant schema.

    Called when a tenant that enables the plugin starts. Return the folder
    holding ``NNNN_name.sql`` files (numbered from 0001, never edited once
    released) or a list of :class:`core.storage.migrations.Migration`. The core applies
    them in order inside the tenant's schema (``search_path`` is set), records
    each with a SHA-256 checksum in ``tenantry_migrations`` and refuses to
    start a tenant whose applied migration changed.

    Returns:
        A folder path, a list of migrations, or None.
    """


@hookspec
def register_jobs() -> Sequence[JobSpec] | None:
    """Return the background jobs this plugin provides.

    Called once per plugin at runtime start. Each :class:`core.storage.jobs.JobSpec`
    names an async function ``fn(tenant, **kwargs)`` and optionally a cron
    schedule (five fields, UTC). Cron jobs run once per tenant that enables the
    plugin, once per schedule tick even with several runtimes; one-off jobs are
    queued with :meth:`core.runtime.tenant.Tenant.enqueue`.

    Returns:
        A sequence of JobSpec, or None.
    """


# ---------------------------------------------------------------- bot


@hookspec
def register_routers(tenant: Tenant) -> Router | Sequence[Router] | None:
    """Build this plugin's aiogram Router(s) for one tenant's Dispatcher.

    Called each time a tenant starts (also after a hot reload). Build new
    Router objects on every call: an aiogram Router has a single parent, so a
    module-level Router cannot serve two tenants. Handlers receive ``tenant``
    (:class:`core.runtime.tenant.Tenant`) as a keyword argument.

    Args:
        tenant: the tenant being started.

    Returns:
        A Router, a sequence of Routers, or None.
    """


@hookspec
def register_commands(tenant: Tenant) -> Sequence[tuple[str, str] | tuple[str, str, str]] | None:
    """List the bot commands this plugin adds, for ``/help`` and setMyCommands.

    Admin-only commands (third element ``"admin"``) are shown only to
    ``bot.admins``: in ``/help`` and in the command menu of their chats
    (setMyCommands with BotCommandScopeChat); everyone else's menu holds the
    public ones. Handlers must still check ``tenant.is_admin``.

    Args:
        tenant: the tenant being started; use ``tenant.text`` to translate.

    Returns:
        ``(command, description)`` or ``(command, description, "admin")``
        tuples, command without the slash (Bot API BotCommand: 1-32 chars
        a-z0-9_, description 1-256 chars).
    """


@hookspec
def register_texts() -> dict[str, dict[str, str]] | None:
    """Return this plugin's default bot texts per locale.

    Called once per plugin when a tenant is loaded. Shape: ``{"en": {"key":
    "text"}, "ru": {...}}``; texts may hold ``str.format`` fields such as
    ``{name}``. The tenant's ``texts:`` block overrides any key, and a missing
    locale falls back to ``en``. Keys are shared by all plugins, so prefix them
    with the plugin name (``booking.pick_date``).

    Returns:
        Locale -> key -> text, or None.
    """


# ---------------------------------------------------------------- http


@hookspec
def register_route_handlers() -> Sequence[Any] | None:
    """Return this plugin's Litestar controllers and route handlers.

    Called once per plugin when the Litestar app is built. The core mounts them
    under ``/api/tenants/{tenant_id}/<plugin name>`` and answers 404 for a
    tenant that does not enable the plugin, so handlers never see such a
    tenant. Handlers may ask for the ``tenant`` dependency
    (:class:`core.runtime.tenant.Tenant`) and use the guards in :mod:`core.http.auth`.

    Returns:
        Controller classes and route handler functions.
    """


# ---------------------------------------------------------------- events


@hookspec
def on_event(tenant: Tenant, event: DomainEvent) -> Awaitable[None] | None:
    """React to a domain event published by any plugin of the same tenant.

    Called for every enabled plugin of that tenant (the publisher included),
    in the background after ``tenant.publish`` returned, one event at a time in
    publication order. An exception is logged with the tenant and event name
    and does not reach the publisher or other plugins.

    Args:
        tenant: the tenant the event belongs to.
        event: name (``"booking.created"``), payload (JSON-ready dict), and
            occurred_at (UTC).
    """


# ---------------------------------------------------------------- lifecycle


@hookspec
def on_tenant_started(tenant: Tenant) -> Awaitable[None] | None:
    """Run after a tenant's migrations are applied and its Dispatcher is ready.

    Use it to warm caches or schedule jobs. An exception puts the tenant in the
    ``failed`` state; other tenants are unaffected.

    Args:
        tenant: the started tenant.
    """


@hookspec
def on_tenant_stopped(tenant: Tenant) -> Awaitable[None] | None:
    """Run when a tenant is stopped (removed, replaced by a reload, or shutdown).

    In-flight updates of this tenant have finished. Release anything
    ``on_tenant_started`` acquired. Data is kept.

    Args:
        tenant: the stopped tenant.
    """
