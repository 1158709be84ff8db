"""The pluggy plugin manager and the helpers that call hooks.

Built-in plugins are listed in :data:`BUILTIN_PLUGINS`; third-party plugins
come from the ``tenantry.plugins`` entry-point group (the entry point's name is
the feature key tenants write under ``features:``). Nothing is registered at
import time: call :func:`build_plugin_manager`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

import pluggy

from core import hookspecs

__all__ = [
    "BUILTIN_PLUGINS",
    "CORE_PLUGIN",
    "build_plugin_manager",
    "plugin_names",
    "resolve",
]

CORE_PLUGIN = "core"
"""Name of the always-enabled core plugin (users table, /start, /help)."""

BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    (CORE_PLUGIN, "core.builtin"),
    ("booking", "plugins.booking.hookimpls"),
    ("broadcast", "plugins.broadcast.hookimpls"),
    ("orders", "plugins.orders.hookimpls"),
    ("realtime", "plugins.realtime.hookimpls"),
    ("shifts", "plugins.shifts.hookimpls"),
)
"""``(feature name, module)`` of the plugins shipped with Tenantry."""

ENTRY_POINT_GROUP = "tenantry.plugins"


def build_plugin_manager(
    *, entry_points: bool = True, extra: Iterable[tuple[str, object]] = ()
) -> pluggy.PluginManager:
    """Create a plugin manager with the hookspecs, built-ins, entry points and ``extra``.

    Args:
        entry_points: also load third-party plugins from ``tenantry.plugins``.
        extra: ``(name, plugin object)`` pairs to register (tests, embedding).

    Returns:
        A ready PluginManager with project name ``tenantry``.

    Raises:
        ImportError: a built-in plugin module cannot be imported.
        ValueError: two plugins claim one name.
    """
    pm = pluggy.PluginManager("tenantry")
    pm.add_hookspecs(hookspecs)
    for name, module_path in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_path), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of all registered plugins (feature keys), core first."""
    names = [name for name, _ in pm.list_name_plugin() if name]
    return sorted(names, key=lambda n: (n != CORE_PLUGIN, n))


async def resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable, else return it (pluggy has no async hooks)."""
    if inspect.isawaitable(value):
        return await value
    return value


def hook_summary(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Describe each plugin: name, version (distribution, if any) and implemented hooks."""
    versions = {}
    for plugin, dist in pm.list_plugin_distinfo():
        versions[pm.get_name(plugin)] = f"{dist.project_name} {dist.version}"
    try:
        from importlib.metadata import version

        own = version("tenantry")
    except Exception:  # not installed as a distribution (a source checkout)
        own = "source"
    summary = []
    for name in plugin_names(pm):
        plugin = pm.get_plugin(name)
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        summary.append(
            {"name": name, "version": versions.get(name, f"tenantry {own}"), "hooks": hooks}
        )
    return summary
