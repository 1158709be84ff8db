"""HTTP API of the ``sample`` test plugin: tickets with a status machine, behind the core guards.

The third example of the plugin template: bodies are ``data: JSONBody[Struct]``
parameters and answers Structs, so Litestar decodes, validates and documents
them; refusals are the core's errors with a ``sample.<what>`` code.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from core.errors import NotFound
from core.http.auth import ActorDep, TenantDep, require_api_key, require_api_key_or_webapp


class TicketIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new ticket: ``title`` 1-200 characters, ``kind`` tested by the machine's ``when:``."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: str = "normal"


class TicketMove(msgspec.Struct, forbid_unknown_fields=True):
    """A status change request."""

    status: str


class TicketState(msgspec.Struct):
    """A ticket's id and status."""

    id: int
    status: str


class TicketRow(msgspec.Struct):
    """A ticket in the listing."""

    id: int
    title: str
    status: str


class TicketList(msgspec.Struct):
    """The tickets, and who asked (the resolved caller)."""

    caller: dict[str, Any]
    tickets: list[TicketRow]


class TicketController(Controller):
    """``/api/tenants/{tenant_id}/sample/tickets``."""

    path = "/tickets"

    @post("/", guards=[require_api_key])
    async def create(self, data: JSONBody[TicketIn], tenant: TenantDep) -> TicketState:
        """Create a ticket in the initial state and publish ``sample.created``."""
        machine = tenant.statuses["tickets"]
        async with tenant.db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO tickets (title, kind, status) VALUES ($1, $2, $3) RETURNING id, status",
                data.title,
                data.kind,
                machine.initial,
            )
            await tenant.publish(
                "sample.created", {"id": row["id"], "title": data.title}, conn=conn
            )
        return TicketState(id=row["id"], status=row["status"])

    @get("/", guards=[require_api_key_or_webapp])
    async def list_tickets(self, tenant: TenantDep, actor: ActorDep) -> TicketList:
        """List tickets and say who asked (``role``: the actor's first role)."""
        rows = await tenant.db.fetch("SELECT id, title, status FROM tickets ORDER BY id")
        caller = {**msgspec.to_builtins(actor), "role": actor.grants[0].role}
        return TicketList(caller=caller, tickets=[TicketRow(**dict(r)) for r in rows])

    @post("/{ticket_id:int}/status", guards=[require_api_key])
    async def move(
        self, ticket_id: FromPath[int], data: JSONBody[TicketMove], tenant: TenantDep
    ) -> TicketState:
        """Change a ticket's status through the tenant's machine.

        Raises:
            NotFound: ``sample.not_found``, no such ticket.
            TransitionError: 409 ``status.not_allowed`` (400 ``status.unknown``).
        """
        async with tenant.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT status, kind FROM tickets WHERE id = $1 FOR UPDATE", ticket_id
            )
            if row is None:
                raise NotFound("sample.not_found", f"no ticket {ticket_id}")
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
        return TicketState(id=ticket_id, status=data.status)
