"""HTTP API of the broadcast plugin, mounted by the core at ``/api/tenants/{tenant_id}/broadcast``.

Every route takes the tenant's API key (``X-API-Key``, role ``admin``).
Campaigns are created with text or media (URL or file_id), an audience and an
optional start time in the tenant's time zone, then paused, resumed,
cancelled and read back with their per-recipient results. Refusals are the
runtime's problem bodies (``core.errors``) with codes ``broadcast.<what>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from core.errors import BadRequest
from core.http.auth import TenantDep, require_api_key
from core.http.idempotency import idempotent_response
from core.http.ratelimit import limit_writes
from plugins.broadcast import campaigns, subscribers
from plugins.broadcast import repository as repo
from plugins.broadcast.audiences import count_audience

__all__ = [
    "AudienceIn",
    "CampaignIn",
    "CampaignView",
    "CampaignsController",
    "ContentIn",
    "DeliveryView",
    "SubscribersController",
]

_ID = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class AudienceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who receives a campaign.

    Attributes:
        kind: ``all``, ``language`` or ``segment``.
        language: Telegram ``language_code`` (``ru``) for ``kind: language``.
        segment: a segment name from ``GET /audiences`` (``booking.visited``).
        params: the segment's parameters (``{"days": 30}``).
    """

    kind: Literal["all", "language", "segment"] = "all"
    language: Annotated[str, msgspec.Meta(max_length=35)] | None = None
    segment: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    params: dict[str, int | str] = msgspec.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stored form (:mod:`plugins.broadcast.audiences`)."""
        if self.kind == "language":
            if self.language is None:
                raise BadRequest("broadcast.bad_audience", "kind language needs language")
            return {"kind": "language", "language": self.language}
        if self.kind == "segment":
            if self.segment is None:
                raise BadRequest("broadcast.bad_audience", "kind segment needs segment")
            return {"kind": "segment", "segment": self.segment, "params": dict(self.params)}
        return {"kind": "all"}


class ContentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a campaign sends.

    Attributes:
        kind: ``text``, ``photo``, ``video`` or ``document``.
        text: the message, 1-4096 characters (Bot API sendMessage.text), for ``text``.
        media: a URL or Telegram file_id, for the other kinds.
        caption: 0-1024 characters (Bot API sendPhoto.caption).
        parse_mode: ``HTML`` or ``MarkdownV2`` formatting of text and caption.
    """

    kind: Literal["text", "photo", "video", "document"]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    media: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    caption: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    parse_mode: Literal["HTML", "MarkdownV2"] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stored form (:func:`plugins.broadcast.sending.send_content`)."""
        if self.kind == "text":
            if not self.text or not self.text.strip():
                raise BadRequest("broadcast.bad_content", "a text campaign needs text")
            return {
                "kind": "text",
                "text": self.text.replace("\x00", ""),
                "parse_mode": self.parse_mode,
            }
        if not self.media:
            raise BadRequest("broadcast.bad_content", f"a {self.kind} campaign needs media")
        return {
            "kind": self.kind,
            "media": self.media,
            "caption": self.caption.replace("\x00", "") if self.caption else None,
            "parse_mode": self.parse_mode,
        }


class CampaignIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new campaign.

    Attributes:
        content: what to send.
        audience: to whom; everyone when left out.
        send_at: when to start: an ISO 8601 time with an offset, or without
            one in the tenant's time zone (``2026-12-24T10:00``). Now when left out.
    """

    content: ContentIn
    audience: AudienceIn = msgspec.field(default_factory=AudienceIn)
    send_at: datetime | None = None


class CampaignView(msgspec.Struct):
    """A campaign with its progress.

    Attributes:
        counts: deliveries by status: pending, sending, sent, failed, blocked,
            unknown (in flight when a runtime died; not sent again), cancelled.
        rate: messages settled per second since it started.
        eta_seconds: pending deliveries over the configured rate.
    """

    id: int
    status: str
    audience: dict[str, Any]
    content: dict[str, Any]
    total: int
    created_via: str
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    rate: float
    eta_seconds: float


class DeliveryView(msgspec.Struct):
    """One recipient's result: ``status``, and the Bot API's answer (message id or error)."""

    id: int
    chat_id: int
    status: str
    attempts: int
    message_id: int | None
    error_code: int | None
    error: str
    sending_at: datetime | None
    finished_at: datetime | None


class AudienceCount(msgspec.Struct):
    """How many active subscribers an audience holds."""

    audience: dict[str, Any]
    count: int


class SegmentChoice(msgspec.Struct):
    """A ready-made segment audience."""

    segment: str
    title: str
    params: dict[str, Any]
    count: int


class SubscriberStats(msgspec.Struct):
    """Subscribers by status, active ones by language, and segment audiences with counts."""

    by_status: dict[str, int]
    by_language: dict[str, int]
    segments: list[SegmentChoice]


async def _campaign_view(tenant: Any, campaign_id: int) -> CampaignView:
    view = await campaigns.progress(tenant, campaign_id)
    row = view["campaign"]
    return CampaignView(
        id=row["id"],
        status=row["status"],
        audience=row["audience"],
        content=row["content"],
        total=row["total"],
        created_via=row["created_via"],
        created_at=row["created_at"],
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        counts=view["counts"],
        rate=round(view["rate"], 2),
        eta_seconds=round(view["eta_seconds"], 1),
    )


class SubscribersController(Controller):
    """Subscriber counts and audiences."""

    path = "/"

    @get("/subscribers/stats", guards=[require_api_key], summary="Subscriber counts")
    async def stats(self, tenant: TenantDep) -> SubscriberStats:
        """Counts by status, by language and by segment preset."""
        stats = await subscribers.stats(tenant)
        return SubscriberStats(
            by_status=stats["by_status"],
            by_language=dict(stats["by_language"]),
            segments=[
                SegmentChoice(segment=n, title=t, params=p, count=c)
                for n, t, p, c in stats["segments"]
            ],
        )

    @post(
        "/audiences/count", guards=[require_api_key], summary="Count an audience", status_code=200
    )
    async def count(self, tenant: TenantDep, data: JSONBody[AudienceIn]) -> AudienceCount:
        """How many active subscribers the audience holds now (what a campaign would be sent to).

        Raises:
            BadRequest: ``broadcast.bad_audience``, ``broadcast.unknown_segment``,
                ``broadcast.bad_segment_params``.
        """
        audience = data.as_dict()
        return AudienceCount(audience=audience, count=await count_audience(tenant, audience))


class CampaignsController(Controller):
    """Campaigns: create (Idempotency-Key), list, progress, pause, resume, cancel, results."""

    path = "/campaigns"

    @post("/", guards=[require_api_key, limit_writes], summary="Create a campaign")
    async def create(
        self, tenant: TenantDep, request: Request[Any, Any, Any], data: JSONBody[CampaignIn]
    ) -> Response[CampaignView]:
        """Create a campaign; it starts at once or at ``send_at``.

        Returns:
            201 with the campaign; 400 ``broadcast.bad_content``,
            ``broadcast.bad_audience``, ``broadcast.unknown_segment``,
            ``broadcast.bad_segment_params`` or ``broadcast.empty_audience``.
        """
        content = data.content.as_dict()
        audience = data.audience.as_dict()
        send_at = data.send_at
        if send_at is not None and send_at.tzinfo is None:
            send_at = send_at.replace(tzinfo=tenant.tz)
        if send_at is not None:
            send_at = send_at.astimezone(UTC)

        async def run() -> tuple[int, Any]:
            if await count_audience(tenant, audience) == 0:
                raise BadRequest(
                    "broadcast.empty_audience", "no active subscriber is in this audience"
                )
            row = await campaigns.create_campaign(
                tenant,
                audience=audience,
                content=content,
                created_by=None,
                created_via="api",
                scheduled_at=send_at,
            )
            return 201, msgspec.to_builtins(await _campaign_view(tenant, row["id"]))

        return await idempotent_response(request, tenant, "broadcast.create", run)

    @get("/", guards=[require_api_key], summary="Latest campaigns")
    async def list_campaigns(
        self, tenant: TenantDep, limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20
    ) -> list[CampaignView]:
        """The latest campaigns with their progress, newest first."""
        async with tenant.db.acquire() as conn:
            rows = await repo.list_campaigns(conn, limit)
        return [await _campaign_view(tenant, row["id"]) for row in rows]

    @get("/{campaign_id:int}", guards=[require_api_key], summary="A campaign and its progress")
    async def read(self, tenant: TenantDep, campaign_id: FromPath[_ID]) -> CampaignView:
        """Counts by status, rate and time to finish.

        Raises:
            NotFound: ``broadcast.not_found``.
        """
        return await _campaign_view(tenant, campaign_id)

    async def _change(self, tenant: Any, campaign_id: int, action: str) -> CampaignView:
        await campaigns.change_status(tenant, campaign_id, action)
        return await _campaign_view(tenant, campaign_id)

    @post(
        "/{campaign_id:int}/pause",
        guards=[require_api_key, limit_writes],
        status_code=200,
        summary="Pause",
    )
    async def pause(self, tenant: TenantDep, campaign_id: FromPath[_ID]) -> CampaignView:
        """Stop sending after the messages in flight; resume later.

        Raises:
            NotFound: ``broadcast.not_found``.
            Conflict: ``broadcast.not_allowed`` (done, cancelled or already paused).
        """
        return await self._change(tenant, campaign_id, "pause")

    @post(
        "/{campaign_id:int}/resume",
        guards=[require_api_key, limit_writes],
        status_code=200,
        summary="Resume",
    )
    async def resume(self, tenant: TenantDep, campaign_id: FromPath[_ID]) -> CampaignView:
        """Go on with a paused campaign (scheduled again if its time has not come).

        Raises:
            NotFound: ``broadcast.not_found``.
            Conflict: ``broadcast.not_allowed`` (not paused).
        """
        return await self._change(tenant, campaign_id, "resume")

    @post(
        "/{campaign_id:int}/cancel",
        guards=[require_api_key, limit_writes],
        status_code=200,
        summary="Cancel",
    )
    async def cancel(self, tenant: TenantDep, campaign_id: FromPath[_ID]) -> CampaignView:
        """Cancel every delivery not yet sent.

        Raises:
            NotFound: ``broadcast.not_found``.
            Conflict: ``broadcast.not_allowed`` (done or cancelled).
        """
        return await self._change(tenant, campaign_id, "cancel")

    @post(
        "/{campaign_id:int}/retry-unknown",
        guards=[require_api_key, limit_writes],
        status_code=200,
        summary="Send the unknown deliveries again",
    )
    async def retry_unknown(self, tenant: TenantDep, campaign_id: FromPath[_ID]) -> CampaignView:
        """Send again to recipients whose send was in flight when a runtime died (they may get two).

        Raises:
            NotFound: ``broadcast.not_found``.
            Conflict: ``broadcast.not_allowed`` (cancelled).
        """
        await campaigns.retry_unknown(tenant, campaign_id)
        return await _campaign_view(tenant, campaign_id)

    @get("/{campaign_id:int}/deliveries", guards=[require_api_key], summary="Per-recipient results")
    async def deliveries(
        self,
        tenant: TenantDep,
        campaign_id: FromPath[_ID],
        status: FromQuery[str | None] = None,
        after: Annotated[int, QueryParameter(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[DeliveryView]:
        """Results in id order; page with ``?after=<last id>``, filter with ``?status=``.

        Raises:
            NotFound: ``broadcast.not_found``.
            BadRequest: ``broadcast.unknown_status``.
        """
        if status is not None and status not in repo.DELIVERY_STATES:
            raise BadRequest(
                "broadcast.unknown_status",
                f"no delivery status {status!r}",
                allowed=list(repo.DELIVERY_STATES),
            )
        await campaigns.load(tenant, campaign_id)
        async with tenant.db.acquire() as conn:
            rows = await repo.deliveries(conn, campaign_id, status, after, limit)
        return [DeliveryView(**dict(r)) for r in rows]
