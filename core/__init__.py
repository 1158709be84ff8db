"""Tenantry core: tenants from YAML, pluggy plugins, one runtime for many bots and one API.

Plugin authors import from here::

    from core import hookimpl, Tenant, StatusEntity, StatusMachineSpec, JobSpec

Only the hook markers are imported with the package; every other name is
imported on first use (:func:`__getattr__`), so the config-phase commands
(``tenantry check``, ``schema``, ``plugins``) do not pay for saq, asyncpg or
structlog when a plugin module does ``from core import hookimpl``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.hookspecs import hookimpl, hookspec

if TYPE_CHECKING:
    from core.actors import Actor, Grant, HasRole, Role, resolve_actor
    from core.events.model import DomainEvent
    from core.runtime.tenant import Tenant, TenantState
    from core.storage.jobs import JobSpec
    from core.storage.migrations import Migration
    from core.storage.statuses import StatusEntity, StatusMachineSpec, Transition, TransitionError

__all__ = [
    "Actor",
    "DomainEvent",
    "Grant",
    "HasRole",
    "JobSpec",
    "Migration",
    "Role",
    "StatusEntity",
    "StatusMachineSpec",
    "Tenant",
    "TenantState",
    "Transition",
    "TransitionError",
    "hookimpl",
    "hookspec",
    "resolve_actor",
]

_LAZY_EXPORTS = {
    "Actor": "core.actors",
    "Grant": "core.actors",
    "HasRole": "core.actors",
    "Role": "core.actors",
    "resolve_actor": "core.actors",
    "DomainEvent": "core.events.model",
    "JobSpec": "core.storage.jobs",
    "Migration": "core.storage.migrations",
    "StatusEntity": "core.storage.statuses",
    "StatusMachineSpec": "core.storage.statuses",
    "Transition": "core.storage.statuses",
    "TransitionError": "core.storage.statuses",
    "Tenant": "core.runtime.tenant",
    "TenantState": "core.runtime.tenant",
}


def __getattr__(name: str) -> Any:
    """Import a public name of :data:`__all__` from its module on first access (PEP 562).

    Raises:
        AttributeError: ``name`` is not a public name of the package.
    """
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
