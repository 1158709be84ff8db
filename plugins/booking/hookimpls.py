"""pluggy wiring of the booking plugin (the only module the plugin manager sees)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import Role, StatusEntity, StatusMachineSpec, Transition, hookimpl
from plugins.booking.config import BookingSettings

if TYPE_CHECKING:
    # The bot, API, job and service modules (aiogram, Litestar) are imported
    # inside the hooks that need them, so the config-phase hooks, and with
    # them ``tenantry check``, load only the settings and texts.
    from aiogram import Router

    from core import DomainEvent, JobSpec, Tenant
    from core.web.pages import WebPages

DEFAULT_MACHINE = StatusMachineSpec(
    initial="pending",
    transitions={
        "pending": [
            Transition(to="confirmed", roles=["admin", "system"]),
            Transition(to="cancelled", roles=["customer", "admin"]),
        ],
        "confirmed": [
            Transition(to="seated", roles=["admin"]),
            Transition(to="cancelled", roles=["customer", "admin"]),
            Transition(to="no_show", roles=["admin"]),
        ],
        "seated": [Transition(to="completed", roles=["admin"])],
    },
    states=["pending", "confirmed", "seated", "completed", "cancelled", "no_show"],
)
"""pending -> confirmed -> seated -> completed, with cancelled and no_show."""


@hookimpl
def register_settings() -> type[BookingSettings]:
    """``features.booking`` is validated by :class:`BookingSettings`."""
    return BookingSettings


@hookimpl
def register_status_machines() -> list[StatusEntity]:
    """``statuses.booking`` over ``bookings.status``; renames also rewrite the history."""
    return [
        StatusEntity(
            name="booking",
            table="bookings",
            default=DEFAULT_MACHINE,
            rename_columns=(("booking_history", "from_status"), ("booking_history", "to_status")),
        )
    ]


@hookimpl
def register_migrations() -> Path:
    """The plugin's numbered SQL files."""
    return Path(__file__).parent / "migrations"


@hookimpl
def register_texts() -> dict[str, dict[str, str]]:
    """English and Russian bot texts (``booking.*``), the segment titles and page texts included."""
    from plugins.booking import segments
    from plugins.booking.texts import TEXTS
    from plugins.booking.web.texts import WEB_TEXTS

    return {
        locale: {**TEXTS[locale], **segments.TEXTS.get(locale, {}), **WEB_TEXTS.get(locale, {})}
        for locale in TEXTS
    }


@hookimpl
def register_segments(tenant: Tenant) -> list[Any]:
    """Audiences for campaigns: ``booking.visited`` (last N days) and ``booking.upcoming``."""
    from plugins.booking.segments import segments

    return segments(tenant)


@hookimpl
def register_roles() -> list[Role]:
    """``customer`` (books for themselves) and ``admin`` (every booking, /today, /block)."""
    return [
        Role("customer", "books, sees and cancels own bookings"),
        Role("admin", "sees and changes every booking, blocks times"),
    ]


@hookimpl
def register_routers(tenant: Tenant) -> Router:
    """A new booking Router for ``tenant``."""
    from plugins.booking.bot import build_router

    return build_router(tenant)


@hookimpl
def register_commands(tenant: Tenant) -> list[tuple[str, ...]]:
    """``/book``, ``/mybookings`` for everyone; ``/today``, ``/bookings``, ``/block``, ``/panel`` for admins."""
    public = [(c, tenant.text(f"booking.command.{c}")) for c in ("book", "mybookings")]
    admin = [
        (c, tenant.text(f"booking.command.{c}"), "admin")
        for c in ("today", "bookings", "block", "panel")
    ]
    return [*public, *admin]


@hookimpl
def register_route_handlers() -> Sequence[Any]:
    """The booking and blocked-slot controllers."""
    from plugins.booking.api import BlockedSlotsController, BookingController

    return [BookingController, BlockedSlotsController]


@hookimpl
def register_web_pages() -> WebPages:
    """The admins' live panel (``/web/{id}/booking/admin``) and the customers' WebApp (``/app``)."""
    from plugins.booking.web import web_pages

    return web_pages()


async def _remind(tenant: Tenant, booking_id: int) -> None:
    from plugins.booking.service import send_reminder

    await send_reminder(tenant, booking_id)


@hookimpl
def register_jobs() -> list[JobSpec]:
    """``booking.remind``: one reminder per booking, re-checking its status first."""
    from core import JobSpec

    return [JobSpec(name="booking.remind", function=_remind, timeout=30, retries=1)]


@hookimpl
async def on_tenant_started(tenant: Tenant) -> None:
    """Check the status settings against the machine, then mirror tables/staff/services to SQL."""
    from plugins.booking.lifecycle import check_statuses, sync_catalogue

    check_statuses(tenant)
    await sync_catalogue(tenant)


@hookimpl
async def on_event(tenant: Tenant, event: DomainEvent) -> None:
    """Notify admins and customers of the plugin's own events."""
    if not event.name.startswith("booking."):
        return
    from plugins.booking.lifecycle import handle_event

    await handle_event(tenant, event)
