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
    from collections.abc import Awaitable, Mapping, Sequence

    import msgspec
    from aiogram import Router

    from core.actors import Grant, Role
    from core.events.model import DomainEvent
    from core.imports import Importer
    from core.runtime.tenant import Tenant
    from core.segments import Segment
    from core.storage.jobs import JobSpec
    from core.storage.migrations import Migration
    from core.storage.statuses import StatusEntity, StatusMachine
    from core.web.pages import WebPages

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


@hookspec
def check_settings(
    settings: msgspec.Struct, machines: Mapping[str, StatusMachine]
) -> Sequence[tuple[Sequence[str | int], str]] | None:
    """Check this plugin's settings against what the Struct alone cannot see.

    Called when a tenant file is validated (``tenantry check``, the admin
    API, the tenants folder), for each enabled plugin whose settings Struct
    converted, after the tenant's status machines were built: a setting that
    names a state must name one of the tenant's ``statuses.<entity>``.

    Args:
        settings: this plugin's validated ``features.<name>`` Struct.
        machines: entity name -> the tenant's StatusMachine (defaults plus overrides).

    Returns:
        ``(path, reason)`` pairs, ``path`` inside ``features.<name>``
        (``["closed_status"]``, ``["ranks", 0, "name"]``): each becomes a
        ConfigError issue at that field's file and line. None or empty: fine.
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
def register_commands(
    tenant: Tenant,
) -> Sequence[tuple[str, str] | tuple[str, str, str | tuple[str, ...]]] | None:
    """List the bot commands this plugin adds, for ``/help`` and setMyCommands.

    A third element names the role (``"admin"``, ``"manager"``) or roles
    (``("staff", "manager")``) the command is for. Such a command is listed
    in ``/help`` only for actors holding one of them, and in the command menu
    of the chats of ``bot.admins`` when ``admin`` is among them
    (setMyCommands with BotCommandScopeChat); everyone else's menu holds the
    public ones. Register its handler on a sub-router filtered with
    :class:`core.actors.HasRole`: someone without the role who sends the
    command gets the core's polite refusal (text ``error.role_required``).

    Args:
        tenant: the tenant being started; use ``tenant.text`` to translate.

    Returns:
        ``(command, description)`` or ``(command, description, roles)``
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


# ---------------------------------------------------------------- web


@hookspec
def register_web_pages() -> WebPages | None:
    """Return this plugin's web pages: route handlers, templates, static files, staff pages.

    Called once per plugin when the Litestar app is built (gathered into the
    contributions table). The core mounts ``route_handlers`` under
    ``/web/{tenant_id}/<plugin name>`` (404 for a tenant that does not enable
    the plugin, like the API mounts), serves ``static`` at
    ``/web/static/<plugin name>/`` and adds ``templates`` to the one Jinja
    environment, where a template is named ``<plugin name>/<file>`` and
    extends ``core/base.html``. Page handlers find the signed-in staff member
    with :func:`core.web.auth.page_actor`; JSON routes use the guard
    :func:`core.web.auth.require_staff`. Customer WebApp pages call the
    plugin's own API with ``X-Telegram-Init-Data``. ``staff_pages`` are
    listed on the tenant's web index for the roles they name.

    Returns:
        A :class:`core.web.pages.WebPages`, or None.
    """


# ---------------------------------------------------------------- actors


@hookspec
def register_roles() -> Sequence[Role] | None:
    """Declare the roles this plugin uses, with the scope kinds a grant of each may carry.

    Called once per plugin when tenant files are validated (gathered into
    the contributions table). A role declared by several plugins is one
    role: its scope kinds are the union of theirs. The core declares
    ``admin``, ``customer`` and ``system``. The tenant YAML may name only
    declared roles in ``api.keys[].role``, and only the scope kinds that
    role declares in ``api.keys[].scope``; ``register_commands`` and
    :class:`core.actors.HasRole` name roles the same way.

    Returns:
        A sequence of :class:`core.actors.Role` (``Role("partner", "a store's
        staff", scopes=("store",))``), or None.
    """


@hookspec
def grant_roles(
    tenant: Tenant, user_id: int
) -> Sequence[Grant] | Awaitable[Sequence[Grant]] | None:
    """Say which roles Telegram user ``user_id`` holds in ``tenant``.

    Called for every enabled plugin (and the core) once per bot update and
    once per WebApp request, by :func:`core.actors.resolve_actor`; every
    answer is merged into one :class:`core.actors.Actor`. This is on the
    webhook's hot path: answer from memory (the tenant's settings, or a copy
    kept per tenant and refreshed on change) rather than with a query per
    call. The core grants ``admin`` to ``bot.admins`` and ``customer`` to
    everyone.

    Args:
        tenant: the tenant the user acts in.
        user_id: the Telegram user id.

    Returns:
        :class:`core.actors.Grant` objects (``Grant("partner", {"store":
        frozenset({"bakery"})})``), an awaitable of them, or None.
    """


# ---------------------------------------------------------------- events


@hookspec
def on_event(tenant: Tenant, event: DomainEvent) -> Awaitable[None] | None:
    """React to a domain event published by any plugin of the same tenant.

    Called for every enabled plugin of that tenant (the publisher included),
    in the background once the publishing transaction committed, on whichever
    runtime reads the event first (:mod:`core.events.consumers`: one Redis
    consumer group per plugin). Delivered at least once: an exception (or the
    runtime dying meanwhile) means the event is delivered again after
    ``TENANTRY_EVENTS_CLAIM_IDLE_SECONDS``, up to ``TENANTRY_EVENTS_MAX_ATTEMPTS``
    times; an event already handled by this plugin is skipped, and one event is
    never run by two runtimes for one plugin at the same time. Make side
    effects idempotent on ``event.id`` where a repeat would hurt. An exception
    is logged with the tenant, plugin and event and reaches nobody else.

    Args:
        tenant: the tenant the event belongs to.
        event: ``id`` (stable across deliveries), ``name``
            (``"booking.created"``), ``payload`` (JSON-ready dict),
            ``tenant_id`` and ``occurred_at`` (UTC).
    """


# ---------------------------------------------------------------- audiences and imports


@hookspec
def register_segments(tenant: Tenant) -> Sequence[Segment] | Awaitable[Sequence[Segment]] | None:
    """Offer groups of this tenant's users as audiences (campaigns of the broadcast plugin).

    Called per tenant, for its enabled plugins only, each time an audience is
    listed or resolved (cheap: build the Segment objects, run no query). Each
    :class:`core.segments.Segment` names itself ``<plugin>.<what>`` and
    computes its members (Telegram user ids) on a connection in the tenant's
    schema when asked.

    Args:
        tenant: the tenant; use ``tenant.text`` for titles and its settings for presets.

    Returns:
        A sequence of Segment, or None.
    """


@hookspec
def register_importers() -> Sequence[Importer] | None:
    """Offer importers to ``tenantry import`` (loading a tenant's data from a file).

    Called once per plugin by the CLI. Each :class:`core.imports.Importer`
    runs inside one transaction in the tenant's schema; ``--dry-run`` rolls
    it back.

    Returns:
        A sequence of Importer, or None.
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
