"""Who is acting in the shifts plugin: the ``staff`` and ``manager`` roles, in one place.

Employees live in the database (``employees``), not in YAML. A Telegram user
who joined as an employee holds ``staff`` or ``manager`` (:func:`grants_for`,
the ``grant_roles`` hook); the tenant's ``bot.admins`` and its plain API keys
are the core's ``admin``, which may do everything a manager may. Handlers get
the core's resolved ``Actor``; :func:`acting_of` turns it into the plugin's
:class:`Acting` (role and employee id).

Lookups go through a small per-tenant directory (Telegram user id ->
employee id and role) read with one query and kept for
:data:`DIRECTORY_TTL_SECONDS`, so an update does not query the database to
know a role; a change made on this runtime clears it at once, one made on
another runtime is seen within the TTL.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

import msgspec

from core.actors import Actor, Grant, Role
from plugins.shifts import repository as repo

if TYPE_CHECKING:
    from core import Tenant

__all__ = [
    "DIRECTORY_TTL_SECONDS",
    "MANAGING_ROLES",
    "Acting",
    "acting_of",
    "forget_directory",
    "grants_for",
    "role_declarations",
    "with_acting",
]

DIRECTORY_TTL_SECONDS = 10.0
"""How long a runtime trusts its copy of the employee directory."""

MANAGING_ROLES = ("manager", "admin")
"""Roles that approve, reject and correct shifts, manage employees and read every report."""


class Acting(msgspec.Struct, frozen=True):
    """Who does something in the plugin.

    Attributes:
        role: ``staff``, ``manager``, ``admin`` or ``system`` (jobs, imports).
        user_id: Telegram user id, None for API keys and the system.
        employee_id: the acting employee, None for admins without an
            employee row, API keys and the system.
    """

    role: str
    user_id: int | None = None
    employee_id: int | None = None

    @property
    def manages(self) -> bool:
        """True for managers, admins and the system."""
        return self.role in (*MANAGING_ROLES, "system")


SYSTEM = Acting(role="system")


class _Directory:
    __slots__ = ("loaded_at", "members")

    def __init__(self) -> None:
        self.members: dict[int, tuple[int, str]] = {}
        self.loaded_at = float("-inf")


_DIRECTORIES: weakref.WeakKeyDictionary[Any, _Directory] = weakref.WeakKeyDictionary()


async def _member(tenant: Tenant, user_id: int) -> tuple[int, str] | None:
    """``(employee id, role)`` of an active employee who is Telegram user ``user_id``."""
    directory = _DIRECTORIES.get(tenant)
    if directory is None:
        directory = _DIRECTORIES[tenant] = _Directory()
    if time.monotonic() - directory.loaded_at > DIRECTORY_TTL_SECONDS:
        async with tenant.db.acquire() as conn:
            rows = await repo.staff_user_ids(conn)
        directory.members = {r["user_id"]: (r["id"], r["role"]) for r in rows}
        directory.loaded_at = time.monotonic()
    return directory.members.get(user_id)


def forget_directory(tenant: Tenant) -> None:
    """Drop this runtime's copy of the directory (after an employee changed)."""
    _DIRECTORIES.pop(tenant, None)


async def acting_of(tenant: Tenant, actor: Actor | None) -> Acting | None:
    """The plugin's view of the core's resolved ``actor`` (bot update or HTTP request).

    The role is the actor's first (in the core's precedence, ``admin`` first)
    of ``admin``, ``manager``, ``staff``; the employee comes from the
    directory. None when the actor holds none of them.
    """
    if actor is None:
        return None
    role = actor.role_for(("admin", "manager", "staff"))
    if role is None:
        return None
    employee_id = None
    if actor.user_id is not None:
        member = await _member(tenant, actor.user_id)
        employee_id = member[0] if member is not None else None
    return Acting(role=role, user_id=actor.user_id, employee_id=employee_id)


async def grants_for(tenant: Tenant, user_id: int) -> list[Grant]:
    """``grant_roles``: ``staff`` or ``manager`` for an active employee who joined."""
    member = await _member(tenant, user_id)
    return [Grant(role=member[1])] if member is not None else []


def role_declarations() -> list[Role]:
    """``register_roles``: the ``staff`` and ``manager`` roles."""
    return [
        Role(name="staff", description="an employee: opens and closes own shifts, sees own pay"),
        Role(
            name="manager",
            description="approves, rejects and corrects shifts, manages employees, reads reports",
        ),
    ]


async def with_acting(event: Any, tenant: Tenant, actor: Actor | None = None) -> bool | dict:
    """aiogram filter after ``HasRole``: hands handlers ``acting`` (the employee behind the actor)."""
    acting = await acting_of(tenant, actor)
    return {"acting": acting} if acting is not None else False
