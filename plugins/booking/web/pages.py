"""The booking pages, under ``/web/{tenant_id}/booking``.

* ``GET /admin``: the admins' live panel (table map or staff columns, the
  day's timeline, the bookings with their allowed status buttons, blocks,
  the day's figures). Its script reads ``GET /board`` and writes through
  ``POST /bookings/{id}/status``, ``POST /blocks``, ``DELETE /blocks/{id}``:
  JSON routes for a signed-in admin (:func:`core.web.auth.require_staff`),
  calling the same service functions as the API.
* ``GET /app``: the customers' WebApp (book; my bookings with cancel). It
  calls the plugin's API (``/api/tenants/{id}/booking``) with the WebApp's
  init data; the page itself needs no sign-in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from core.actors import Actor
from core.errors import BadRequest, Forbidden
from core.http.auth import ActorDep, TenantDep
from core.http.ratelimit import limit_writes
from core.runtime.tenant import Tenant
from core.web.auth import page_actor, require_staff, web_base
from core.web.pages import js_texts, machine_for, web_text
from core.web.render import page
from plugins.booking import service
from plugins.booking.config import WEEKDAYS, parse_hours
from plugins.booking.service import BlockView, BookingView, DailyStats
from plugins.booking.texts import TEXTS
from plugins.booking.web.texts import WEB_TEXTS

__all__ = ["Board", "BookingPages", "NewWebBlock", "WebStatusChange"]

_HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Board(msgspec.Struct):
    """What the admin panel shows of one local day.

    Attributes:
        date: the local date.
        opens / closes: minutes after the day's local midnight the place opens
            and closes (``closes`` may pass 1440 for a night past midnight);
            ``0``/``1440`` when closed.
        bookings: the day's bookings, by start.
        stats: the day's figures.
        blocks: blocks overlapping the day.
    """

    date: date
    opens: int
    closes: int
    bookings: list[BookingView]
    stats: DailyStats
    blocks: list[BlockView]


class WebStatusChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /bookings/{id}/status``: the target ``status`` and an optional ``comment``."""

    status: Annotated[str, msgspec.Meta(max_length=64)]
    comment: Annotated[str, msgspec.Meta(max_length=500)] = ""


class NewWebBlock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /blocks``: a local day, ``HH:MM`` times (an end at or before the start
    is refused), a table or staff id (null: the whole place) and a reason (200 chars)."""

    date: date
    starts: _HHMM
    ends: _HHMM
    resource: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


def _admin(actor: Actor) -> None:
    """Raises Forbidden (403 ``auth.role_required``) unless ``actor`` is an admin."""
    if not actor.has_role("admin"):
        raise Forbidden("auth.role_required", "the booking panel is for admins", roles=["admin"])


def _hours(tenant: Tenant, day: date) -> tuple[int, int]:
    settings = service.settings_of(tenant)
    text = settings.opening_hours.get(WEEKDAYS[day.weekday()])
    if not text or day in settings.closed_dates:
        return 0, 1440
    hours = parse_hours(text)
    opens = hours.opens.hour * 60 + hours.opens.minute
    return opens, opens + hours.closes_after_minutes


def _texts(tenant: Tenant) -> dict[str, str]:
    machine = tenant.statuses[service.PLUGIN]
    keys = [
        *WEB_TEXTS["en"],
        *(k for k in TEXTS["en"] if k.startswith("booking.error.")),
        *(f"booking.status.{s}" for s in machine.states),
        "web.state_connecting",
        "web.state_live",
        "web.state_offline",
        "web.state_polling",
        "web.error_generic",
        "web.error_network",
    ]
    return js_texts(tenant, keys)


def _resources(tenant: Tenant) -> list[dict[str, Any]]:
    settings = service.settings_of(tenant)
    if settings.kind == "tables":
        return [
            {
                "id": t.id,
                "seats": t.seats,
                "zone": t.zone or web_text(tenant, "booking.web.no_zone"),
            }
            for t in settings.tables
        ]
    return [{"id": s.id, "name": s.name, "zone": ""} for s in settings.staff]


def _today(tenant: Tenant) -> date:
    return datetime.now(UTC).astimezone(tenant.tz).date()


def _who(actor: Actor) -> str:
    if actor.via == "api_key":
        return f"api:{actor.key_name}" if actor.key_name else "api"
    return f"telegram:{actor.user_id}"


class BookingPages(Controller):
    """The admin panel, its JSON routes, and the customers' WebApp."""

    path = "/"

    @get("/admin")
    async def admin_page(self, tenant: TenantDep, request: Request[Any, Any, Any]) -> Any:
        """The admins' live panel (sign-in first)."""
        actor = await page_actor(request, tenant, "admin")
        if not isinstance(actor, Actor):
            return actor
        settings = service.settings_of(tenant)
        machine = tenant.statuses[service.PLUGIN]
        base = web_base(tenant)
        data = {
            "texts": _texts(tenant),
            "kind": settings.kind,
            "timezone": tenant.config.timezone,
            "today": _today(tenant).isoformat(),
            "currency": settings.currency,
            "resources": _resources(tenant),
            "services": {s.id: s.name for s in settings.services},
            "machine": machine_for(machine, "admin"),
            "released": list(settings.released_statuses),
            "final": [s for s in machine.states if machine.is_final(s)],
            "no_show": settings.no_show_status,
            "seated": "seated",
            "live": tenant.enabled("realtime"),
            "urls": {
                "board": f"{base}/booking/board",
                "bookings": f"{base}/booking/bookings",
                "blocks": f"{base}/booking/blocks",
                "ticket": f"{base}/realtime/ticket",
                "socket": f"/api/tenants/{tenant.id}/realtime/ws",
            },
            "signin_url": f"{base}/signin",
        }
        return page(
            tenant,
            "booking/admin.html",
            title=web_text(tenant, "booking.web.admin_title"),
            data=data,
            resources=data["resources"],
            kind=settings.kind,
        )

    @get("/board", guards=[require_staff])
    async def board(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        day: Annotated[date, QueryParameter(name="date", description="local date")],
    ) -> Board:
        """The day's bookings, figures and blocks (admins)."""
        _admin(actor)
        bookings = await service.bookings_on(tenant, day)
        stats = await service.daily_stats(tenant, day)
        blocks = await service.list_blocks(tenant, day)
        opens, closes = _hours(tenant, day)
        return Board(day, opens, closes, bookings, stats, blocks)

    @post(
        "/bookings/{booking_id:int}/status", guards=[require_staff, limit_writes], status_code=200
    )
    async def set_status(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        booking_id: FromPath[int],
        data: JSONBody[WebStatusChange],
    ) -> BookingView:
        """Move a booking as ``admin``; 409 ``status.not_allowed`` when the machine refuses."""
        _admin(actor)
        view, _ = await service.change_status(
            tenant,
            booking_id,
            data.status,
            role="admin",
            actor_id=actor.user_id,
            comment=data.comment,
        )
        return view

    @post("/blocks", guards=[require_staff, limit_writes], status_code=201)
    async def block(
        self, tenant: TenantDep, actor: ActorDep, data: JSONBody[NewWebBlock]
    ) -> BlockView:
        """Block a time of the day; 400 ``booking.range`` for an end not after the start."""
        _admin(actor)
        start = datetime.combine(data.date, time.fromisoformat(data.starts), tzinfo=tenant.tz)
        end = datetime.combine(data.date, time.fromisoformat(data.ends), tzinfo=tenant.tz)
        if end <= start:
            raise BadRequest("booking.range", "the end must be after the start")
        return await service.create_block(
            tenant, start, end, data.resource or None, data.reason, created_by=_who(actor)
        )

    @delete("/blocks/{block_id:int}", guards=[require_staff, limit_writes], status_code=204)
    async def unblock(self, tenant: TenantDep, actor: ActorDep, block_id: FromPath[int]) -> None:
        """Remove a block; 404 ``booking.not_found`` when there is none."""
        _admin(actor)
        await service.delete_block(tenant, block_id)

    @get("/app")
    async def app_page(self, tenant: TenantDep) -> Any:
        """The customers' WebApp: pick a day, party or service, a time; book; my bookings."""
        settings = service.settings_of(tenant)
        api = f"/api/tenants/{tenant.id}/booking"
        today = _today(tenant)
        services_title = settings.kind == "services"
        data = {
            "texts": _texts(tenant),
            "kind": settings.kind,
            "timezone": tenant.config.timezone,
            "days": [
                (today + timedelta(days=n)).isoformat() for n in range(settings.days_ahead + 1)
            ],
            "max_party": settings.max_party_size,
            "services": [
                {"id": s.id, "name": s.name, "staff": list(s.staff), "price": s.price}
                for s in settings.services
            ],
            "staff": {s.id: s.name for s in settings.staff},
            "currency": settings.currency,
            "cancelled": settings.cancelled_status,
            "machine": machine_for(tenant.statuses[service.PLUGIN], "customer"),
            "urls": {
                "availability": f"{api}/availability",
                "bookings": f"{api}/bookings",
                "mine": f"{api}/my-bookings",
            },
        }
        title_key = "booking.web.app_title_services" if services_title else "booking.web.app_title"
        return page(
            tenant,
            "booking/app.html",
            title=web_text(tenant, title_key),
            data=data,
            kind=settings.kind,
        )
