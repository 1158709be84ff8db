"""Hook implementations of the ``sample`` test plugin.

It keeps ``tickets`` with a status machine, exposes them over HTTP with the
core guards, answers ``/ping`` and ``/boom`` in the bot, records domain events
and runs a job, so core tests can drive every hook through the runtime.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from core import JobSpec, StatusEntity, StatusMachineSpec, Tenant, Transition, hookimpl
from core.auth import CallerDep, TenantDep, require_api_key, require_api_key_or_webapp

EVENTS: list[tuple[str, str, dict[str, Any]]] = []
JOB_RUNS: list[tuple[str, dict[str, Any]]] = []
STARTED: list[str] = []
STOPPED: list[str] = []


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
    router = Router(name=f"sample:{tenant.id}")

    @router.message(Command("ping"))
    async def ping(message: Message, tenant: Tenant) -> None:
        await message.answer(tenant.settings_for("sample").greeting)

    @router.message(Command("boom"))
    async def boom(message: Message, tenant: Tenant) -> None:
        raise RuntimeError("handler exploded")

    return router


class TicketIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new ticket."""

    title: str
    kind: str = "normal"


class TicketMove(msgspec.Struct, forbid_unknown_fields=True):
    """A status change request."""

    status: str


class TicketController(Controller):
    """``/api/tenants/{tenant_id}/sample/tickets``."""

    path = "/tickets"

    @post("/", guards=[require_api_key])
    async def create(self, data: JSONBody[TicketIn], tenant: TenantDep) -> dict[str, Any]:
        """Create a ticket in the initial state and publish ``sample.created``."""
        machine = tenant.statuses["tickets"]
        row = await tenant.db.fetchrow(
            "INSERT INTO tickets (title, kind, status) VALUES ($1, $2, $3) RETURNING id, status",
            data.title,
            data.kind,
            machine.initial,
        )
        await tenant.publish("sample.created", {"id": row["id"], "title": data.title})
        return dict(row)

    @get("/", guards=[require_api_key_or_webapp])
    async def list_tickets(self, tenant: TenantDep, caller: CallerDep) -> dict[str, Any]:
        """List tickets and say who asked."""
        rows = await tenant.db.fetch("SELECT id, title, status FROM tickets ORDER BY id")
        return {"caller": msgspec.to_builtins(caller), "tickets": [dict(r) for r in rows]}

    @post("/{ticket_id:int}/status", guards=[require_api_key])
    async def move(
        self, ticket_id: FromPath[int], data: JSONBody[TicketMove], tenant: TenantDep
    ) -> dict[str, Any]:
        """Change a ticket's status through the tenant's machine (409 when illegal)."""
        async with tenant.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT status, kind FROM tickets WHERE id = $1 FOR UPDATE", ticket_id
            )
            tenant.statuses["tickets"].check(
                row["status"], data.status, "admin", {"kind": row["kind"]}
            )
            await conn.execute(
                "UPDATE tickets SET status = $2 WHERE id = $1", ticket_id, data.status
            )
            await conn.execute(
                "INSERT INTO ticket_history (ticket_id, from_status, to_status) VALUES ($1, $2, $3)",
                ticket_id,
                row["status"],
                data.status,
            )
        return {"id": ticket_id, "status": data.status}


@hookimpl
def register_route_handlers() -> list[type[Controller]]:
    """The tickets controller."""
    return [TicketController]


async def record_job(tenant: Tenant, **kwargs: Any) -> None:
    """Record that the job ran for ``tenant``."""
    JOB_RUNS.append((tenant.id, kwargs))


@hookimpl
def register_jobs() -> list[JobSpec]:
    """``sample.record`` appends to JOB_RUNS."""
    return [JobSpec(name="sample.record", function=record_job)]


@hookimpl
async def on_event(tenant: Tenant, event: Any) -> None:
    """Record every event this tenant's plugins publish; a ticket titled "slow" takes 1 s."""
    if event.payload.get("title") == "slow":
        await asyncio.sleep(1)
    EVENTS.append((tenant.id, event.name, event.payload))


@hookimpl
async def on_tenant_started(tenant: Tenant) -> None:
    """Record the start."""
    STARTED.append(tenant.id)


@hookimpl
def on_tenant_stopped(tenant: Tenant) -> None:
    """Record the stop."""
    STOPPED.append(tenant.id)
