"""The table of what every plugin contributed: the one place that asks each plugin alone.

Static registrations (settings Structs, status machines, texts, roles,
migrations, jobs, importers, route handlers, web pages) are gathered from the plugin manager once and kept per
plugin name, so the loader, the migrations, the JSON Schema, the HTTP app and
the CLI read a typed table instead of calling hooks by name. Each phase is
collected the first time it is read: ``tenantry check`` reads only the config
phase and never imports a plugin's bot or HTTP modules.

Per-tenant hooks (routers, commands, events, lifecycle) are not here: a tenant
calls them through pluggy's own subset hook callers (:class:`core.runtime.tenant.Tenant`).
"""

from __future__ import annotations

import weakref
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from core.runtime.plugins import CORE_PLUGIN, plugin_names

if TYPE_CHECKING:
    from collections.abc import Sequence

    import msgspec

    from core.actors import Role
    from core.runtime.tenant import SubsetHooks
    from core.storage.jobs import JobSpec
    from core.storage.migrations import Migration
    from core.storage.statuses import StatusEntity
    from core.web.pages import WebPages

__all__ = ["Contributions", "contributions_of"]

_TABLES: weakref.WeakKeyDictionary[pluggy.PluginManager, Contributions] = (
    weakref.WeakKeyDictionary()
)


class Contributions:
    """What each registered plugin contributed, by plugin name (feature key).

    Build it with :func:`contributions_of`. Every mapping holds one entry per
    plugin that returned something; a plugin whose hook returned None is absent.

    Attributes:
        names: every plugin name, ``core`` first, then alphabetical.
        features: the names a tenant may enable (all but ``core``).
    """

    def __init__(self, pm: pluggy.PluginManager):
        self._pm = pm
        self.names: tuple[str, ...] = tuple(plugin_names(pm))
        self.features: frozenset[str] = frozenset(self.names) - {CORE_PLUGIN}
        self._hooks: dict[frozenset[str], SubsetHooks] = {}

    def hooks_for(self, features: Sequence[str]) -> SubsetHooks:
        """The hook callers of the plugins named ``features`` only (a tenant's enabled plugins).

        One :class:`~core.runtime.tenant.SubsetHooks` per set of names, shared
        by every tenant enabling that set: 10,000 tenants on three plugin
        combinations hold three, each building pluggy's
        ``subset_hook_caller`` for a hook the first time it is called.
        """
        wanted = frozenset(features)
        hooks = self._hooks.get(wanted)
        if hooks is None:
            from core.runtime.tenant import SubsetHooks

            disabled = [p for name, p in self._pm.list_name_plugin() if name not in wanted]
            hooks = self._hooks[wanted] = SubsetHooks(self._pm, disabled)
        return hooks

    def implementers(self, hook: str) -> tuple[str, ...]:
        """Names of the plugins that implement ``hook`` (``on_event``...), in :attr:`names` order."""
        implementing = {impl.plugin_name for impl in getattr(self._pm.hook, hook).get_hookimpls()}
        return tuple(name for name in self.names if name in implementing)

    def _ask_each(self, hook: str) -> dict[str, Any]:
        """Call ``hook`` of each plugin alone (a pluggy subset caller), keep non-None results."""
        results: dict[str, Any] = {}
        plugins = dict(self._pm.list_name_plugin())
        for name in self.names:
            others = [plugin for other, plugin in plugins.items() if other != name]
            answers = self._pm.subset_hook_caller(hook, remove_plugins=others)()
            if answers and answers[0] is not None:
                results[name] = answers[0]
        return results

    # ------------------------------------------------------------ config phase

    @cached_property
    def settings(self) -> dict[str, type[msgspec.Struct]]:
        """Plugin name -> its settings Struct (``register_settings``)."""
        return self._ask_each("register_settings")

    @cached_property
    def status_entities(self) -> dict[str, tuple[StatusEntity, ...]]:
        """Plugin name -> the entities whose status it keeps (``register_status_machines``)."""
        return {n: tuple(v) for n, v in self._ask_each("register_status_machines").items()}

    @cached_property
    def texts(self) -> dict[str, dict[str, dict[str, str]]]:
        """Plugin name -> locale -> text key -> text (``register_texts``)."""
        return self._ask_each("register_texts")

    @cached_property
    def roles(self) -> dict[str, tuple[Role, ...]]:
        """Plugin name -> the roles it declares (``register_roles``)."""
        return {n: tuple(v) for n, v in self._ask_each("register_roles").items()}

    @cached_property
    def role_table(self) -> dict[str, Role]:
        """Role name -> the role, merged over every plugin that declares it.

        The description is the first plugin's (``core`` first); the scope
        kinds are the union of all declarations, in first-seen order.

        Raises:
            ValueError: a role name or scope kind outside
                :data:`core.actors.ROLE_NAME_PATTERN` (a plugin bug, caught at start).
        """
        import re

        from core.actors import ROLE_NAME_PATTERN, Role

        pattern = re.compile(ROLE_NAME_PATTERN)
        table: dict[str, Role] = {}
        for plugin, roles in self.roles.items():
            for role in roles:
                for name in (role.name, *role.scopes):
                    if not pattern.match(name):
                        raise ValueError(
                            f"plugin {plugin!r} declares role or scope kind {name!r}, "
                            f"which does not match {ROLE_NAME_PATTERN}"
                        )
                held = table.get(role.name)
                if held is None:
                    table[role.name] = role
                else:
                    scopes = (*held.scopes, *(k for k in role.scopes if k not in held.scopes))
                    table[role.name] = Role(held.name, held.description, scopes)
        return table

    # ------------------------------------------------------------ storage phase

    @cached_property
    def migrations(self) -> dict[str, Path | Sequence[Migration]]:
        """Plugin name -> its migrations folder or list (``register_migrations``)."""
        return self._ask_each("register_migrations")

    @cached_property
    def jobs(self) -> dict[str, tuple[JobSpec, ...]]:
        """Plugin name -> its job specs (``register_jobs``)."""
        return {n: tuple(v) for n, v in self._ask_each("register_jobs").items()}

    @cached_property
    def importers(self) -> dict[str, tuple[Any, ...]]:
        """Plugin name -> its data importers (``register_importers``; ``tenantry import``)."""
        return {n: tuple(v) for n, v in self._ask_each("register_importers").items() if v}

    # ------------------------------------------------------------ http phase

    @cached_property
    def route_handlers(self) -> dict[str, tuple[Any, ...]]:
        """Plugin name -> its Litestar route handlers (``register_route_handlers``)."""
        return {n: tuple(v) for n, v in self._ask_each("register_route_handlers").items() if v}

    # ------------------------------------------------------------ web phase

    @cached_property
    def web_pages(self) -> dict[str, WebPages]:
        """Plugin name -> its web pages, templates and static files (``register_web_pages``)."""
        return self._ask_each("register_web_pages")


def contributions_of(source: pluggy.PluginManager | Contributions) -> Contributions:
    """The contributions table of a plugin manager, collected once per manager.

    Args:
        source: a plugin manager (its table is built on first use and kept as
            long as the manager lives), or a table, returned as is.

    Returns:
        The :class:`Contributions` of ``source``.
    """
    if isinstance(source, Contributions):
        return source
    table = _TABLES.get(source)
    if table is None:
        table = _TABLES[source] = Contributions(source)
    return table
