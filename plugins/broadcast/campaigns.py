"""Campaigns: create, schedule, pause, resume, cancel, progress and the final report.

A campaign moves through ``scheduled -> running -> done``, may be ``paused``
and resumed while scheduled or running, and ``cancelled`` until it is done.
Each change is one conditional UPDATE, so two admins (or two runtimes)
pressing at once get one change and one refusal (409 ``broadcast.not_allowed``).
Events (``broadcast.created``, ``broadcast.status_changed``,
``broadcast.progress``, ``broadcast.finished``) carry the counts so a
dashboard can show them live.
"""

from __future__ import annotations

import inspect
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import Conflict, NotFound
from core.kit.telegram import edit_message_text, send_message
from plugins.broadcast import repository as repo
from plugins.broadcast.audiences import members_filter
from plugins.broadcast.engine import clear_due, mark_due

if TYPE_CHECKING:
    from core import Tenant
    from core.updates.limiter import BotLimiter

__all__ = ["change_status", "create_campaign", "finish", "progress", "report_progress"]

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pause": ("scheduled", "running"),
    "resume": ("paused",),
    "cancel": ("scheduled", "running", "paused"),
}
"""Action -> the campaign states it is allowed from."""


async def publish(tenant: Tenant, name: str, payload: dict[str, Any], conn: Any = None) -> None:
    """Publish a ``broadcast.*`` event, inside ``conn``'s transaction when the core takes one.

    Progress events are informative: a failure to publish is logged and the
    campaign goes on.
    """
    try:
        if conn is not None and "conn" in inspect.signature(tenant.publish).parameters:
            await tenant.publish(name, payload, conn=conn)
        else:
            await tenant.publish(name, payload)
    except Exception as exc:
        if conn is not None:
            raise
        tenant.log.warning("broadcast_event_not_published", event_name=name, error=str(exc))


async def create_campaign(
    tenant: Tenant,
    *,
    audience: dict[str, Any],
    content: dict[str, Any],
    created_by: int | None,
    created_via: str,
    scheduled_at: datetime | None = None,
    status_chat_id: int | None = None,
) -> dict[str, Any]:
    """Write a campaign and one pending delivery per recipient, then let the workers run it.

    Args:
        audience: see :mod:`plugins.broadcast.audiences`.
        content: see :func:`plugins.broadcast.sending.send_content`.
        created_by: the admin's Telegram id, None for API keys.
        created_via: ``bot`` or ``api``.
        scheduled_at: aware time to start; None (or a past time) starts now.
        status_chat_id: the chat whose status message shows the progress.

    Returns:
        The campaign row.

    Raises:
        BadRequest: the audience is malformed or names an unknown segment.
    """
    now = datetime.now(UTC)
    scheduled = scheduled_at is not None and scheduled_at > now
    async with tenant.db.transaction() as conn:
        campaign_id = await repo.insert_campaign(
            conn,
            status="scheduled" if scheduled else "running",
            audience=audience,
            content=content,
            created_by=created_by,
            created_via=created_via,
            scheduled_at=scheduled_at,
        )
        language, among = await members_filter(tenant, conn, audience)
        total = await repo.insert_deliveries(conn, campaign_id, language, among)
        if status_chat_id is not None:
            await conn.execute(
                "UPDATE broadcast_campaigns SET status_chat_id = $2 WHERE id = $1",
                campaign_id,
                status_chat_id,
            )
        await publish(
            tenant,
            "broadcast.created",
            {
                "campaign_id": campaign_id,
                "total": total,
                "audience": audience,
                "scheduled_at": scheduled_at.isoformat() if scheduled else None,
            },
            conn,
        )
        row = await repo.campaign(conn, campaign_id)
    await mark_due(tenant, campaign_id, scheduled_at if scheduled else None)
    tenant.log.info("broadcast_created", campaign_id=campaign_id, total=total, scheduled=scheduled)
    return row  # type: ignore[return-value]


async def load(tenant: Tenant, campaign_id: int) -> dict[str, Any]:
    """The campaign, or 404 ``broadcast.not_found``."""
    async with tenant.db.acquire() as conn:
        row = await repo.campaign(conn, campaign_id)
    if row is None:
        raise NotFound("broadcast.not_found", f"no campaign {campaign_id}")
    return row


async def change_status(tenant: Tenant, campaign_id: int, action: str) -> dict[str, Any]:
    """Pause, resume or cancel a campaign.

    Pausing drops the runners' claims, so no further message goes out after
    the sends already in flight; cancelling also cancels every pending
    delivery. Resuming a campaign whose start time has not come makes it
    scheduled again.

    Raises:
        NotFound: no such campaign.
        Conflict: ``broadcast.not_allowed`` from its current state (``current``, ``allowed``).
    """
    current = await load(tenant, campaign_id)
    target = {"pause": "paused", "cancel": "cancelled"}.get(action)
    if action == "resume":
        due = current["scheduled_at"]
        target = "scheduled" if due is not None and due > datetime.now(UTC) else "running"
    async with tenant.db.transaction() as conn:
        changed = await repo.set_campaign_status(conn, campaign_id, target, TRANSITIONS[action])  # type: ignore[arg-type]
        if changed is None:
            raise Conflict(
                "broadcast.not_allowed",
                f"a {current['status']} campaign cannot be {action}d",
                current=current["status"],
                allowed=list(TRANSITIONS[action]),
            )
        if action == "pause":
            await repo.release_claims(conn, campaign_id, None)
        elif action == "cancel":
            await repo.cancel_pending(conn, campaign_id)
        counts = await repo.campaign_counts(conn, campaign_id)
        await publish(
            tenant,
            "broadcast.status_changed",
            {"campaign_id": campaign_id, "status": changed, **_public_counts(counts)},
            conn,
        )
        row = await repo.campaign(conn, campaign_id)
    if changed in ("running", "scheduled"):
        await mark_due(
            tenant, campaign_id, current["scheduled_at"] if changed == "scheduled" else None
        )
    else:
        await clear_due(tenant, campaign_id)
    if changed == "cancelled":
        await _final_report(tenant, row, counts)  # type: ignore[arg-type]
    return row  # type: ignore[return-value]


async def retry_unknown(tenant: Tenant, campaign_id: int) -> int:
    """Send the ``unknown`` deliveries again (each may then arrive twice); return how many.

    A done campaign runs again for them.

    Raises:
        NotFound: no such campaign.
        Conflict: ``broadcast.not_allowed`` for a cancelled campaign.
    """
    current = await load(tenant, campaign_id)
    if current["status"] == "cancelled":
        raise Conflict(
            "broadcast.not_allowed",
            "a cancelled campaign sends nothing",
            current="cancelled",
            allowed=["scheduled", "running", "paused", "done"],
        )
    async with tenant.db.transaction() as conn:
        count = await repo.retry_unknown(conn, campaign_id)
        if count and current["status"] == "done":
            await repo.set_campaign_status(conn, campaign_id, "running", ("done",))
    if count and current["status"] in ("running", "done"):
        await mark_due(tenant, campaign_id)
    return count


async def start_scheduled(tenant: Tenant, campaign_id: int) -> bool:
    """A scheduled campaign's time came: make it running; False if another runtime did or it changed."""
    async with tenant.db.transaction() as conn:
        changed = await repo.set_campaign_status(conn, campaign_id, "running", ("scheduled",))
        if changed:
            await publish(
                tenant,
                "broadcast.status_changed",
                {"campaign_id": campaign_id, "status": "running"},
                conn,
            )
    if changed:
        return True
    status = await tenant.db.fetchval(
        "SELECT status FROM broadcast_campaigns WHERE id = $1", campaign_id
    )
    return status == "running"


def _public_counts(counts: dict[str, int]) -> dict[str, int]:
    return {
        "sent": counts["sent"],
        "failed": counts["failed"],
        "blocked": counts["blocked"],
        "unknown": counts["unknown"],
        "cancelled": counts["cancelled"],
        "left": counts["pending"] + counts["sending"],
    }


async def progress(tenant: Tenant, campaign_id: int) -> dict[str, Any]:
    """Counts, rate and time to finish of a campaign.

    Returns:
        ``{"campaign": row, "counts": {...by status}, "rate": messages per
        second since it started, "eta_seconds": left / configured rate}``.

    Raises:
        NotFound: no such campaign.
    """
    row = await load(tenant, campaign_id)
    async with tenant.db.acquire() as conn:
        counts = await repo.campaign_counts(conn, campaign_id)
    done = counts["sent"] + counts["failed"] + counts["blocked"]
    rate = 0.0
    if row["started_at"] is not None:
        end = row["finished_at"] or datetime.now(UTC)
        elapsed = (end - row["started_at"]).total_seconds()
        rate = done / elapsed if elapsed > 0 else 0.0
    left = counts["pending"] + counts["sending"]
    configured = tenant.settings_for("broadcast").rate_per_second
    return {"campaign": row, "counts": counts, "rate": rate, "eta_seconds": left / configured}


def progress_text(tenant: Tenant, view: dict[str, Any]) -> str:
    """The admin's status message: sent, failed, left, rate and time to finish."""
    counts = view["counts"]
    return tenant.text(
        "broadcast.progress",
        sent=counts["sent"],
        failed=counts["failed"] + counts["blocked"],
        left=counts["pending"] + counts["sending"],
        total=view["campaign"]["total"],
        rate=f"{view['rate']:.1f}",
        eta=int(view["eta_seconds"]),
    )


def report_text(tenant: Tenant, counts: dict[str, int]) -> str:
    """The final report: sent, failed, blocked and unknown (in flight when a runtime died)."""
    text = tenant.text(
        "broadcast.report",
        sent=counts["sent"],
        failed=counts["failed"],
        blocked=counts["blocked"],
        unknown=counts["unknown"],
    )
    if counts["cancelled"]:
        text += "\n" + tenant.text("broadcast.report_cancelled", cancelled=counts["cancelled"])
    return text


async def report_progress(tenant: Tenant, campaign_id: int, limiter: BotLimiter | None) -> None:
    """Edit the admin's status message and publish ``broadcast.progress``."""
    view = await progress(tenant, campaign_id)
    row = view["campaign"]
    await publish(
        tenant,
        "broadcast.progress",
        {
            "campaign_id": campaign_id,
            "total": row["total"],
            "rate": round(view["rate"], 2),
            "eta_seconds": round(view["eta_seconds"], 1),
            **_public_counts(view["counts"]),
        },
    )
    if row["status_chat_id"] and row["status_message_id"]:
        if limiter is not None:
            await limiter.acquire(notice=True)
        await edit_message_text(
            tenant, row["status_chat_id"], row["status_message_id"], progress_text(tenant, view)
        )


async def finish(tenant: Tenant, campaign_id: int) -> bool:
    """Mark a campaign with nothing pending or in flight done; True for the runner that did."""
    async with tenant.db.transaction() as conn:
        changed = await repo.set_campaign_status(conn, campaign_id, "done", ("running",))
        if changed is None:
            return False
        counts = await repo.campaign_counts(conn, campaign_id)
        await publish(
            tenant,
            "broadcast.finished",
            {"campaign_id": campaign_id, **_public_counts(counts)},
            conn,
        )
        row = await repo.campaign(conn, campaign_id)
    await clear_due(tenant, campaign_id)
    tenant.log.info("broadcast_finished", campaign_id=campaign_id, **_public_counts(counts))
    await _final_report(tenant, row, counts)  # type: ignore[arg-type]
    return True


async def _final_report(tenant: Tenant, row: dict[str, Any], counts: dict[str, int]) -> None:
    chat_id = row["status_chat_id"]
    if not chat_id:
        return
    if row["status_message_id"]:
        view = {"campaign": row, "counts": counts, "rate": 0.0, "eta_seconds": 0}
        await edit_message_text(
            tenant, chat_id, row["status_message_id"], progress_text(tenant, view)
        )
    await send_message(tenant, chat_id, report_text(tenant, counts))


def seconds_since(moment: float) -> float:
    """Monotonic seconds since ``moment``."""
    return time.monotonic() - moment
