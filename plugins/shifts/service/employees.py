"""Employees: added by managers (bot, API, import), joined by a one-time invite link.

Staff change often, so employees are rows of ``employees``, not YAML. An
employee added without a Telegram user joins by opening the invite link
(``https://t.me/<bot>?start=inv_<token>``): the token is random (128 bits),
kept only as its SHA-256, valid for ``invite_ttl_hours`` and used once.
Bot API deep links: the ``start`` parameter is 1-64 characters of
``A-Za-z0-9_-``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from core.errors import BadRequest, Conflict, Forbidden, NotFound
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting, forget_directory
from plugins.shifts.service._unit import change

if TYPE_CHECKING:
    from core import Tenant
    from plugins.shifts.config import ShiftsSettings

__all__ = [
    "INVITE_PREFIX",
    "ROLES",
    "create_employee",
    "create_invite",
    "employee_view",
    "join_by_invite",
    "load_employee",
    "settings_of",
    "update_employee",
]

ROLES = ("staff", "manager")
INVITE_PREFIX = "inv_"
"""Start parameter prefix of invite links (``/start inv_<token>``)."""


def settings_of(tenant: Tenant) -> ShiftsSettings:
    """The tenant's ``features.shifts`` settings."""
    return tenant.settings_for("shifts")


def employee_view(row: asyncpg.Record) -> dict[str, Any]:
    """JSON-ready employee (``hourly_rate`` minor units per hour or None)."""
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "name": row["name"],
        "role": row["role"],
        "hourly_rate": row["hourly_rate"],
        "active": row["active"],
        "external_id": row["external_id"],
        "created_at": row["created_at"].isoformat(),
    }


def _require_manager(acting: Acting) -> None:
    if not acting.manages:
        raise Forbidden("shifts.managers_only", "only managers and admins manage employees")


def clean_name(name: str) -> str:
    """An employee's name, trimmed.

    Raises:
        BadRequest: ``shifts.bad_name``: empty, over 100 characters, or with NUL
            (PostgreSQL text cannot hold U+0000).
    """
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 100 or "\x00" in cleaned:
        raise BadRequest("shifts.bad_name", "a name is 1-100 characters without NUL")
    return cleaned


async def load_employee(tenant: Tenant, employee_id: int) -> dict[str, Any]:
    """The employee ``employee_id``.

    Raises:
        NotFound: ``shifts.employee_not_found``.
    """
    async with tenant.db.acquire() as conn:
        row = await repo.get_employee(conn, employee_id)
    if row is None:
        raise NotFound("shifts.employee_not_found", f"no employee {employee_id}")
    return employee_view(row)


async def create_employee(
    tenant: Tenant,
    acting: Acting,
    *,
    name: str,
    role: str = "staff",
    user_id: int | None = None,
    hourly_rate: int | None = None,
) -> dict[str, Any]:
    """Add an employee (a manager's action); publishes ``shifts.employee_added``.

    Raises:
        Forbidden: ``shifts.managers_only``.
        BadRequest: ``shifts.bad_name``, ``shifts.bad_role``.
        Conflict: ``shifts.user_taken``: the Telegram user is an employee already.
    """
    _require_manager(acting)
    name = clean_name(name)
    if role not in ROLES:
        raise BadRequest("shifts.bad_role", f"role must be one of {', '.join(ROLES)}")
    try:
        async with change(tenant) as unit:
            row = await repo.insert_employee(
                unit.conn, name=name, role=role, user_id=user_id, hourly_rate=hourly_rate
            )
            await unit.publish("shifts.employee_added", {"employee_id": row["id"], "role": role})
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "shifts.user_taken", f"Telegram user {user_id} is an employee already"
        ) from None
    forget_directory(tenant)
    return employee_view(row)


async def update_employee(
    tenant: Tenant, acting: Acting, employee_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change an employee's name, role, hourly rate, Telegram user or active flag.

    Raises:
        Forbidden: ``shifts.managers_only``.
        NotFound: ``shifts.employee_not_found``.
        BadRequest: ``shifts.bad_name``, ``shifts.bad_role``.
        Conflict: ``shifts.user_taken``.
    """
    _require_manager(acting)
    if "name" in changes:
        changes["name"] = clean_name(changes["name"])
    if "role" in changes and changes["role"] not in ROLES:
        raise BadRequest("shifts.bad_role", f"role must be one of {', '.join(ROLES)}")
    try:
        async with change(tenant) as unit:
            row = await repo.update_employee(unit.conn, employee_id, changes)
    except asyncpg.UniqueViolationError:
        raise Conflict("shifts.user_taken", "that Telegram user is an employee already") from None
    if row is None:
        raise NotFound("shifts.employee_not_found", f"no employee {employee_id}")
    forget_directory(tenant)
    return employee_view(row)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_invite(tenant: Tenant, acting: Acting, employee_id: int) -> dict[str, Any]:
    """A one-time invite for an employee who has not joined yet.

    Returns:
        ``{"employee_id", "start", "link", "expires_at"}``: ``start`` is the
        deep-link parameter, ``link`` the ``t.me`` URL (None when the bot's
        username could not be read from getMe).

    Raises:
        Forbidden: ``shifts.managers_only``.
        NotFound: ``shifts.employee_not_found``.
        Conflict: ``shifts.already_joined``.
    """
    _require_manager(acting)
    token = secrets.token_urlsafe(16)
    expires_at = datetime.now(UTC) + timedelta(hours=settings_of(tenant).invite_ttl_hours)
    async with change(tenant) as unit:
        employee = await repo.get_employee(unit.conn, employee_id)
        if employee is None:
            raise NotFound("shifts.employee_not_found", f"no employee {employee_id}")
        if employee["user_id"] is not None:
            raise Conflict("shifts.already_joined", f"employee {employee_id} has joined already")
        await repo.insert_invite(
            unit.conn, _token_hash(token), employee_id, acting.user_id, expires_at
        )
    start = INVITE_PREFIX + token
    link = None
    try:
        me = await tenant.bot.me()
        if me.username:
            link = f"https://t.me/{me.username}?start={start}"
    except Exception:  # a Bot API outage must not lose the invite; the start parameter is enough
        tenant.log.info("shifts_invite_without_link", employee_id=employee_id)
    return {
        "employee_id": employee_id,
        "start": start,
        "link": link,
        "expires_at": expires_at.isoformat(),
    }


async def join_by_invite(tenant: Tenant, start: str, user_id: int) -> dict[str, Any]:
    """Bind Telegram user ``user_id`` to the employee of the invite ``start`` (``inv_<token>``).

    Publishes ``shifts.employee_joined``.

    Raises:
        BadRequest: ``shifts.invite_invalid``: unknown, used or expired.
        Conflict: ``shifts.already_employee``: the user is another employee already.
    """
    token = start.removeprefix(INVITE_PREFIX)
    try:
        async with change(tenant) as unit:
            employee_id = await repo.use_invite(unit.conn, _token_hash(token), user_id)
            if employee_id is None:
                raise BadRequest("shifts.invite_invalid", "the invite is unknown, used or expired")
            row = await repo.update_employee(unit.conn, employee_id, {"user_id": user_id})
            await unit.publish(
                "shifts.employee_joined", {"employee_id": employee_id, "user_id": user_id}
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "shifts.already_employee", "this Telegram user is an employee already"
        ) from None
    forget_directory(tenant)
    return employee_view(row)
