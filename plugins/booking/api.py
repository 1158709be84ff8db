"""HTTP API of the booking plugin, mounted by the core under ``/api/tenants/{tenant_id}/booking``.

Admin routes need an API key acting as ``admin`` (a plain key; a key of
another role is 403 ``auth.role_required``). ``/availability``, ``POST
/bookings``, ``GET /bookings/{id}``, ``POST /bookings/{id}/status`` and
``/my-bookings`` also accept Telegram WebApp init data
(``X-Telegram-Init-Data``) and then act as that user: on their own bookings
as ``customer``, on any booking when the user is one of ``bot.admins``
(the actor's ``admin`` role, :mod:`core.actors`). Bodies are decoded and validated by Litestar from the
Structs below (and documented in the OpenAPI document); answers are Structs.
Refusals are the runtime's problem bodies (``core.errors``) with a code
``booking.<what>``; illegal status moves are the core's 409
``status.not_allowed`` with ``current`` and ``allowed``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from core.actors import Actor
from core.errors import Forbidden
from core.http.auth import (
    ActorDep,
    TenantDep,
    require_api_key,
    require_api_key_or_webapp,
    require_role,
    require_webapp_user,
)
from core.http.idempotency import idempotent_response
from core.http.ratelimit import limit_writes
from plugins.booking import service
from plugins.booking.service import (
    AvailabilityResult,
    BlockView,
    BookingView,
    DailyStats,
    NewBooking,
)

__all__ = ["BlockedSlotsController", "BookingController", "NewBlock", "StatusChange"]

_Day = Annotated[date, QueryParameter(name="date", description="local date, YYYY-MM-DD")]
"""The ``?date=`` query parameter (a local date) of the date-based routes."""


class StatusChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /bookings/{id}/status``.

    Attributes:
        status: the target status (one of the tenant's states).
        comment: recorded in the booking history, up to 500 characters.
    """

    status: str
    comment: str = ""


class NewBlock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /blocked-slots``.

    Attributes:
        starts_at / ends_at: ISO 8601 with a UTC offset; at most 31 days apart.
        resource: a table or staff id; omitted or null blocks the whole place.
        reason: up to 200 characters.
    """

    starts_at: datetime
    ends_at: datetime
    resource: str | None = None
    reason: str = ""


_ROLES = ("admin", "customer")
"""The roles booking knows (``register_roles``), in precedence order."""

_admin_only = require_role("admin")


def _role(actor: Actor) -> str:
    """The booking role ``actor`` acts in: ``admin`` before ``customer``.

    Raises:
        Forbidden: 403 ``auth.role_required``, an API key of a role booking does not know.
    """
    role = actor.role_for(_ROLES)
    if role is None:
        raise Forbidden(
            "auth.role_required", "booking is for the role admin or customer", roles=list(_ROLES)
        )
    return role


def _owner(actor: Actor) -> int | None:
    """The user whose bookings ``actor`` may see and change; None for admins (any booking)."""
    return None if _role(actor) == "admin" else actor.user_id


class BookingController(Controller):
    """Availability, bookings, status changes and daily stats."""

    path = "/"

    @get("/availability", guards=[require_api_key_or_webapp], summary="Free start times of a date")
    async def get_availability(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        day: _Day,
        party_size: Annotated[int | None, QueryParameter(ge=1, le=500)] = None,
        service_code: Annotated[str | None, QueryParameter(name="service", max_length=32)] = None,
        staff: Annotated[str | None, QueryParameter(max_length=32)] = None,
    ) -> AvailabilityResult:
        """Free starts of ``date`` for ``party_size`` (tables) or ``service`` [+ ``staff``] (services).

        Raises:
            BadRequest: ``booking.past``, ``booking.too_far``, ``booking.unknown_service``,
                ``booking.party_size``...
        """
        return await service.availability(
            tenant, day, party_size=party_size, service=service_code, staff=staff
        )

    @post(
        "/bookings",
        guards=[require_api_key_or_webapp, limit_writes],
        summary="Create a booking",
        status_code=201,
    )
    async def create(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        request: Request[Any, Any, Any],
        data: JSONBody[NewBooking],
    ) -> Response[BookingView]:
        """Book, honouring ``Idempotency-Key`` (a retry gets the first answer).

        Returns:
            201 with the booking; 400 bad input (``request.invalid`` for a body
            that does not match :class:`NewBooking`, ``booking.<what>`` for a
            refused one; nothing written); 409 ``booking.slot_taken`` with
            ``alternatives`` (UTC ISO starts).
        """

        role = _role(actor)

        async def run() -> tuple[int, Any]:
            view = await service.create_booking(
                tenant,
                data,
                user_id=actor.user_id,
                source="webapp" if actor.via == "webapp" else "api",
                actor_role=role,
            )
            return 201, view

        return await idempotent_response(
            request, tenant, f"booking.create:{actor.user_id or 'api'}", run
        )

    @get("/bookings", guards=[require_api_key, _admin_only], summary="Bookings of a date")
    async def list_bookings(
        self,
        tenant: TenantDep,
        day: _Day,
        status: Annotated[
            list[str] | None, QueryParameter(description="repeat to filter by several")
        ] = None,
    ) -> list[BookingView]:
        """Bookings starting on ``date``, optionally only in ``status`` (repeatable)."""
        return await service.bookings_on(tenant, day, status)

    @get("/bookings/{booking_id:int}", guards=[require_api_key_or_webapp], summary="One booking")
    async def get_one(
        self, tenant: TenantDep, actor: ActorDep, booking_id: FromPath[int]
    ) -> BookingView:
        """One booking (a customer sees only their own; others are 404)."""
        return await service.get_booking(tenant, booking_id, owner_id=_owner(actor))

    @post(
        "/bookings/{booking_id:int}/status",
        guards=[require_api_key_or_webapp, limit_writes],
        summary="Change a booking's status",
        status_code=200,
    )
    async def set_status(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        booking_id: FromPath[int],
        data: JSONBody[StatusChange],
    ) -> BookingView:
        """Move a booking through the tenant's machine in the actor's role (admin, else customer).

        Raises:
            BadRequest: ``booking.comment`` too long.
            NotFound: ``booking.not_found``, unknown (or another user's) booking.
            Conflict: ``booking.cancellation_cutoff``, the cutoff passed.
            TransitionError: 409 ``status.not_allowed`` with ``current`` and ``allowed``.
        """
        view, _ = await service.change_status(
            tenant,
            booking_id,
            data.status,
            role=_role(actor),
            actor_id=actor.user_id,
            comment=data.comment,
            owner_id=_owner(actor),
        )
        return view

    @get(
        "/my-bookings", guards=[require_webapp_user], summary="The WebApp user's upcoming bookings"
    )
    async def mine(self, tenant: TenantDep, actor: ActorDep) -> list[BookingView]:
        """Upcoming bookings of the WebApp user that still hold their time."""
        return await service.upcoming_for(tenant, actor.user_id or 0)

    @get("/stats", guards=[require_api_key, _admin_only], summary="Daily stats")
    async def stats(
        self,
        tenant: TenantDep,
        day: _Day,
    ) -> DailyStats:
        """Bookings, covers, no-shows and bookings per status of ``date`` (one aggregate query)."""
        return await service.daily_stats(tenant, day)


class BlockedSlotsController(Controller):
    """Admin-made blocks of a resource or the whole place."""

    path = "/blocked-slots"
    guards = [
        require_api_key,
        _admin_only,
        limit_writes,
    ]  # limit_writes counts POST and DELETE only

    @get("/", summary="Blocks overlapping a date")
    async def list_blocks(
        self,
        tenant: TenantDep,
        day: _Day,
    ) -> list[BlockView]:
        """Blocks overlapping ``date``."""
        return await service.list_blocks(tenant, day)

    @post("/", summary="Block a time", status_code=201)
    async def create_block(
        self, tenant: TenantDep, actor: ActorDep, data: JSONBody[NewBlock]
    ) -> BlockView:
        """Block a time; 409 ``booking.conflict`` with ``bookings`` when bookings already hold it.

        ``created_by`` is ``api``, or ``api:<name>`` for a key with a ``name``.
        """
        created_by = f"api:{actor.key_name}" if actor.key_name else "api"
        return await service.create_block(
            tenant, data.starts_at, data.ends_at, data.resource, data.reason, created_by=created_by
        )

    @delete("/{block_id:int}", summary="Remove a block", status_code=204)
    async def remove_block(self, tenant: TenantDep, block_id: FromPath[int]) -> None:
        """Remove a block and free its time; 404 when there is none."""
        await service.delete_block(tenant, block_id)
