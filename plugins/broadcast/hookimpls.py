"""pluggy wiring of the broadcast plugin (the only module the plugin manager sees)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import hookimpl
from plugins.broadcast.config import BroadcastSettings
from plugins.broadcast.texts import TEXTS

if TYPE_CHECKING:
    # The bot, API, engine and service modules (aiogram, Litestar) are
    # imported inside the hooks that need them, so the config-phase hooks,
    # and with them ``tenantry check``, load only the settings and texts.
    from aiogram import Router

    from core import Tenant
    from core.imports import Importer


@hookimpl
def register_settings() -> type[BroadcastSettings]:
    """``features.broadcast`` is validated by :class:`BroadcastSettings`."""
    return BroadcastSettings


@hookimpl
def register_migrations() -> Path:
    """Subscribers, campaigns and deliveries (``plugins/broadcast/migrations``)."""
    return Path(__file__).parent / "migrations"


@hookimpl
def register_texts() -> dict[str, dict[str, str]]:
    """``broadcast.*`` texts in English and Russian."""
    return TEXTS


@hookimpl
def register_routers(tenant: Tenant) -> Router:
    """A new broadcast Router for ``tenant``."""
    from plugins.broadcast.bot import build_router

    return build_router(tenant)


@hookimpl
def register_commands(tenant: Tenant) -> list[tuple[str, ...]]:
    """``/stop`` and ``/subscribe`` for everyone; ``/broadcast``, ``/subscribers`` for senders."""
    public = [(c, tenant.text(f"broadcast.command.{c}")) for c in ("stop", "subscribe")]
    senders = tenant.settings_for("broadcast").senders
    who = senders[0] if len(senders) == 1 else tuple(senders)
    private = [
        (c, tenant.text(f"broadcast.command.{c}"), who) for c in ("broadcast", "subscribers")
    ]
    return [*public, *private]


@hookimpl
def register_route_handlers() -> Sequence[Any]:
    """The subscribers and campaigns controllers."""
    from plugins.broadcast.api import CampaignsController, SubscribersController

    return [SubscribersController, CampaignsController]


@hookimpl
def register_importers() -> Sequence[Importer]:
    """``tenantry import <tenant> subscribers <file.csv>``."""
    from core.imports import Importer
    from plugins.broadcast.importer import import_subscribers

    return [
        Importer(
            name="subscribers",
            feature="broadcast",
            description="broadcast subscribers from a CSV with a user_id column",
            run=import_subscribers,
        )
    ]


@hookimpl
async def on_tenant_started(tenant: Tenant) -> None:
    """Start this runtime's campaign worker for the tenant (it resumes running campaigns)."""
    from plugins.broadcast.engine import CampaignWorker

    await CampaignWorker(tenant, tenant.settings_for("broadcast")).start()


@hookimpl
async def on_tenant_stopped(tenant: Tenant) -> None:
    """Stop the worker: sends in flight finish, claims go back for other runtimes."""
    from plugins.broadcast.engine import worker_of

    worker = worker_of(tenant)
    if worker is not None:
        await worker.stop()
