"""Tenant start and event reactions of the booking plugin."""

from __future__ import annotations

import msgspec

from core import DomainEvent, Tenant
from plugins.booking import notify, repository, service
from plugins.booking.service import BookingView

__all__ = ["check_statuses", "handle_event", "sync_catalogue"]


def check_statuses(tenant: Tenant) -> None:
    """Refuse to start when the status settings name states the tenant's machine lacks.

    Raises:
        ValueError: a ``*_status``/``released_statuses`` entry is unknown, or
            auto-confirmation (``confirmation_required: false``) is not a move
            the ``system`` role may take from the initial state. The tenant
            goes to ``failed`` with this message.
    """
    settings = service.settings_of(tenant)
    machine = tenant.statuses[service.PLUGIN]
    named = {
        "confirmed_status": settings.confirmed_status,
        "cancelled_status": settings.cancelled_status,
        "completed_status": settings.completed_status,
        "no_show_status": settings.no_show_status,
    }
    for index, status in enumerate(settings.released_statuses):
        named[f"released_statuses[{index}]"] = status
    for field, status in named.items():
        if status not in machine.states:
            raise ValueError(
                f"features.booking.{field}: {status!r} is not a booking status "
                f"(statuses: {', '.join(machine.states)})"
            )
    if not settings.confirmation_required and settings.confirmed_status != machine.initial:
        if settings.confirmed_status not in machine.allowed(machine.initial, "system"):
            raise ValueError(
                f"features.booking.confirmation_required is false, but statuses.booking has no move "
                f"{machine.initial!r} -> {settings.confirmed_status!r} for the 'system' role"
            )


async def sync_catalogue(tenant: Tenant) -> None:
    """Mirror the YAML's tables or staff into ``resources`` and services into ``services``."""
    settings = service.settings_of(tenant)
    if settings.kind == "tables":
        resources = [
            (t.id, "table", t.id, t.seats, t.zone, list(t.combinable_with)) for t in settings.tables
        ]
    else:
        resources = [(s.id, "staff", s.name, 1, "", []) for s in settings.staff]
    services = [
        (s.id, s.name, s.duration_minutes, s.price, list(s.staff)) for s in settings.services
    ]
    async with tenant.db.transaction() as conn:
        await repository.sync_resources(conn, resources)
        await repository.sync_services(conn, services)


async def handle_event(tenant: Tenant, event: DomainEvent) -> None:
    """``booking.created``: tell the admins. ``booking.status_changed``: tell the customer
    (unless they made the change) and, for a customer's change, the admins."""
    fields = {f: event.payload[f] for f in BookingView.__struct_fields__}
    view = msgspec.convert(fields, BookingView, strict=False)
    if event.name == "booking.created":
        await notify.admins_new_booking(tenant, view)
    elif event.name == "booking.status_changed":
        actor = event.payload.get("actor_role", "system")
        if actor != "customer":
            await notify.customer_status_changed(tenant, view)
        else:
            await notify.admins_status_changed(tenant, view, actor)
