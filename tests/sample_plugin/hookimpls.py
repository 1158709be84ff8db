"""Hook implementations of the ``sample`` test plugin.

It keeps ``tickets`` with a status machine, exposes them over HTTP with the
core guards, answers ``/ping`` and ``/boom`` in the bot, records domain events
and runs a job, so core tests can drive every hook through the runtime.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from core import StatusEntity, StatusMachineSpec, Transition, hookimpl

if TYPE_CHECKING:
    # Like the built-in plugins, the bot and HTTP parts (aiogram, Litestar)
    # are imported by the hooks that need them, never by the config phase.
    from aiogram import Router
    from litestar import Controller

    from core import JobSpec, Tenant

EVENTS: list[tuple[str, str, dict[str, Any]]] = []
JOB_RUNS: list[tuple[str, dict[str, Any]]] = []
STARTED: list[str] = []
STOPPED: list[str] = []
EVENT_IDS: list[str] = []  # ids of the events handled, in handling order
FAILED_ONCE: set[str] = set()  # ids of "crash-once" events that already failed
RUNNING: set[str] = set()  # ids being handled right now
OVERLAPS: list[str] = []  # ids handled twice at the same time (must stay empty)


class SampleSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the sample plugin.

    Attributes:
        greeting: answer to /ping.
        limit: a number at least 5, to test constraint errors.
    """

    greeting: str = "pong"
    limit: Annotated[int, msgspec.Meta(ge=5)] = 10


DEFAULT_MACHINE = StatusMachineSpec(
    initial="open",
    transitions={
        "open": [Transition(to="done", roles=["admin"]), Transition(to="closed")],
        "done": [Transition(to="closed", roles=["admin"], when={"kind": "normal"})],
    },
)


@hookimpl
def register_settings() -> type[SampleSettings]:
    """The sample settings Struct."""
    return SampleSettings


@hookimpl
def register_status_machines() -> list[StatusEntity]:
    """Tickets have statuses; history rows are renamed with them."""
    return [
        StatusEntity(
            name="tickets",
            table="tickets",
            default=DEFAULT_MACHINE,
            rename_columns=(("ticket_history", "from_status"), ("ticket_history", "to_status")),
        )
    ]


@hookimpl
def register_migrations() -> Path:
    """The tickets tables."""
    return Path(__file__).parent / "migrations"


@hookimpl
def register_texts() -> dict[str, dict[str, str]]:
    """The /ping command description."""
    return {"en": {"sample.ping": "answer pong"}, "ru": {"sample.ping": "ответить pong"}}


@hookimpl
def register_commands(tenant: Tenant) -> list[tuple[str, ...]]:
    """``/ping`` for everyone, ``/purge`` for admins."""
    return [("ping", tenant.text("sample.ping")), ("purge", "delete every ticket", "admin")]


@hookimpl
def register_routers(tenant: Tenant) -> Router:
    """``/ping`` answers the greeting; ``/boom`` raises to test error handling."""
    from aiogram import Router
    from aiogram.filters import Command
    from aiogram.types import Message

    from core.kit import send_message

    router = Router(name=f"sample:{tenant.id}")

    @router.message(Command("ping"))
    async def ping(message: Message, tenant: Tenant) -> None:
        # Through the kit, as notifications do: a blocked user is recorded, 429 waited out.
        await send_message(tenant, message.chat.id, tenant.settings_for("sample").greeting)

    @router.message(Command("boom"))
    async def boom(message: Message, tenant: Tenant) -> None:
        raise RuntimeError("handler exploded")

    return router


@hookimpl
def register_route_handlers() -> list[type[Controller]]:
    """The tickets controller."""
    from sample_plugin.api import TicketController

    return [TicketController]


async def record_job(tenant: Tenant, **kwargs: Any) -> None:
    """Record that the job ran for ``tenant``."""
    JOB_RUNS.append((tenant.id, kwargs))


@hookimpl
def register_jobs() -> list[JobSpec]:
    """``sample.record`` appends to JOB_RUNS; so does ``sample.leap``, a cron job of leap days."""
    from core import JobSpec

    return [
        JobSpec(name="sample.record", function=record_job),
        # Midnight of a leap day (UTC): tests fire it with JobRunner.tick, never by the clock.
        JobSpec(name="sample.leap", function=record_job, cron="0 0 29 2 *"),
    ]


@hookimpl
async def on_event(tenant: Tenant, event: Any) -> None:
    """Record every event this tenant's plugins publish.

    By the payload's ``title``: ``slow`` takes 1 s, ``hold`` 0.4 s,
    ``crash-once`` raises on its first delivery, ``crash-always`` on every one.
    """
    if event.id in RUNNING:
        OVERLAPS.append(event.id)
    RUNNING.add(event.id)
    try:
        title = event.payload.get("title")
        if title == "slow":
            await asyncio.sleep(1)
        elif title == "hold":
            await asyncio.sleep(0.4)
        elif title == "crash-always" or (title == "crash-once" and event.id not in FAILED_ONCE):
            FAILED_ONCE.add(event.id)
            raise RuntimeError(f"subscriber failed on {event.id}")
        EVENTS.append((tenant.id, event.name, event.payload))
        EVENT_IDS.append(event.id)
    finally:
        RUNNING.discard(event.id)


@hookimpl
async def on_tenant_started(tenant: Tenant) -> None:
    """Record the start."""
    STARTED.append(tenant.id)


@hookimpl
def on_tenant_stopped(tenant: Tenant) -> None:
    """Record the stop."""
    STOPPED.append(tenant.id)
