"""Hook implementations of the shifts plugin: the only module pluggy sees (wiring only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import hookimpl
from plugins.shifts.config import ShiftsSettings
from plugins.shifts.machine import SHIFT_ENTITY
from plugins.shifts.texts import TEXTS

if TYPE_CHECKING:
    # The bot, API, services and jobs (aiogram, Litestar, openpyxl) are
    # imported inside the hooks that need them, so the config-phase hooks,
    # and with them ``tenantry check``, load only config modules.
    from aiogram import Router

    from core import DomainEvent, JobSpec, StatusEntity, Tenant
    from core.actors import Role
    from core.imports import Importer

_STAFF = ("staff", "manager", "admin")
_MANAGERS = ("manager", "admin")


@hookimpl
def register_settings() -> type[ShiftsSettings]:
    """``features.shifts`` is validated by :class:`ShiftsSettings`."""
    return ShiftsSettings


@hookimpl
def register_status_machines() -> list[StatusEntity]:
    """The ``shift`` entity (``statuses.shift`` in YAML) over ``shifts.status``."""
    return [SHIFT_ENTITY]


@hookimpl
def register_migrations() -> Path:
    """``plugins/shifts/migrations``: employees, invites, shifts, bonuses, history, ranks, sync log."""
    return Path(__file__).parent / "migrations"


@hookimpl
def register_texts() -> dict[str, dict[str, str]]:
    """``shifts.*`` and ``shift.status.*`` texts in English and Russian."""
    return TEXTS


@hookimpl
def register_routers(tenant: Tenant) -> Router:
    """A fresh shifts Router for this tenant (public, staff and manager sub-routers)."""
    from plugins.shifts import bot

    return bot.build_router(tenant)


@hookimpl
def register_commands(tenant: Tenant) -> list[tuple[str, str, tuple[str, ...]]]:
    """Staff commands for ``staff``/``manager``; manager commands for ``manager`` (and admins)."""
    staff = [
        (c, tenant.text(f"shifts.command.{c}"), _STAFF) for c in ("shift", "myshifts", "mymonth")
    ]
    managers = [
        (c, tenant.text(f"shifts.command.{c}"), _MANAGERS)
        for c in ("pending", "report", "staff", "invite")
    ]
    return [*staff, *managers]


@hookimpl
def register_route_handlers() -> list[Any]:
    """The employees, shifts and reports controllers."""
    from plugins.shifts import api

    return [api.EmployeesController, api.ShiftsController, api.ReportsController]


@hookimpl
def register_jobs() -> Sequence[JobSpec]:
    """``shifts.ranks`` (hourly; computes each local month once) and ``shifts.remind`` (every 10 min)."""
    from core import JobSpec
    from plugins.shifts.service.ranks import rank_job, remind_job

    return [
        JobSpec(name="shifts.ranks", function=rank_job, cron="7 * * * *", timeout=300),
        JobSpec(name="shifts.remind", function=remind_job, cron="*/10 * * * *", timeout=120),
    ]


@hookimpl
def register_importers() -> list[Importer]:
    """``tenantry import <tenant> shifts <files...>``: the old spreadsheets' CSV exports."""
    from core.imports import Importer
    from plugins.shifts.service.imports import record_import, run_import

    return [
        Importer(
            name="shifts",
            feature="shifts",
            description="employees, shifts, bonuses and ranks from the old spreadsheets (CSV)",
            run=run_import,
            many_files=True,
            record=record_import,
        )
    ]


@hookimpl
def register_roles() -> list[Role]:
    """``staff`` and ``manager`` (the core's role contract, issue 10)."""
    from plugins.shifts.access import role_declarations

    return role_declarations()


@hookimpl
def grant_roles(tenant: Tenant, user_id: int) -> Any:
    """``staff`` or ``manager`` for employees who joined (from the plugin's directory)."""
    from plugins.shifts.access import grants_for

    return grants_for(tenant, user_id)


@hookimpl
def check_settings(settings: Any, machines: Any) -> list[tuple[list[str], str]]:
    """The state settings must fit the tenant's ``statuses.shift`` (a YAML error otherwise).

    Returns:
        ``([field], reason)`` for each state setting that is not a state of the
        machine or names a move it lacks (:func:`plugins.shifts.machine.state_problems`).
    """
    from plugins.shifts.machine import state_problems

    return [
        ([path.removeprefix("features.shifts.")], why)
        for path, why in state_problems(settings, machines["shift"])
    ]


@hookimpl
def on_event(tenant: Tenant, event: DomainEvent) -> Any:
    """Tell managers about closed shifts and employees about approvals and corrections."""
    if event.name.startswith("shifts."):
        from plugins.shifts import notify

        return notify.handle_event(tenant, event)
    return None
