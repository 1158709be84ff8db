"""Tenantry core: tenants from YAML, pluggy plugins, one runtime for many bots and one API.

Plugin authors import from here::

    from core import hookimpl, Tenant, StatusEntity, StatusMachineSpec, JobSpec
"""

from core.events import DomainEvent
from core.hookspecs import hookimpl, hookspec
from core.jobs import JobSpec
from core.migrations import Migration
from core.statuses import StatusEntity, StatusMachineSpec, Transition, TransitionError
from core.tenant import Tenant, TenantState

__all__ = [
    "DomainEvent",
    "JobSpec",
    "Migration",
    "StatusEntity",
    "StatusMachineSpec",
    "Tenant",
    "TenantState",
    "Transition",
    "TransitionError",
    "hookimpl",
    "hookspec",
]
