"""Outgoing webhooks: events POSTed to partner systems, signed, retried through the job queue.

Signature (docs/plugins/realtime.md, in the style of Stripe's):
``Tenantry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
Each delivery is a job (``realtime.webhook``) keyed by event id, endpoint and
attempt, so a redelivered event queues nothing new; a failed attempt queues
the next one after ``min(2 ** attempt, 300)`` seconds until
``retry_for_seconds`` after the event, then gives up. Per endpoint, counts
and the last error are kept in the tenant's Redis hash
``<prefix>realtime:webhooks:<n>``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from prometheus_client import Counter

if TYPE_CHECKING:
    from core import Tenant
    from core.events.model import DomainEvent
    from plugins.realtime.config import RealtimeSettings, WebhookEndpoint

__all__ = ["DELIVERIES", "JOB", "deliver", "endpoint_states", "queue_deliveries", "sign"]

JOB = "realtime.webhook"
TIMEOUT_SECONDS = 10
MAX_BACKOFF_SECONDS = 300

DELIVERIES = Counter(
    "tenantry_webhook_deliveries_total",
    "Outgoing webhook attempts by tenant and outcome (delivered, retried, given_up).",
    ["tenant", "outcome"],
)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Tenantry-Signature`` header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def _state_key(tenant: Tenant, endpoint: int) -> str:
    return tenant.key("realtime", "webhooks", endpoint)


async def queue_deliveries(tenant: Tenant, settings: RealtimeSettings, event: DomainEvent) -> int:
    """Queue the first attempt of every endpoint that wants ``event``; return how many."""
    queued = 0
    for n, endpoint in enumerate(settings.webhooks):
        if any(fnmatch.fnmatchcase(event.name, pattern) for pattern in endpoint.events):
            body = {
                "id": event.id,
                "event": event.name,
                "tenant": tenant.id,
                "occurred_at": event.occurred_at.isoformat(),
                "data": event.payload,
            }
            # The retry window starts at the event, not at the first attempt:
            # an event delivered late (a runtime was down) is not retried longer.
            await tenant.enqueue(JOB, key=f"webhook:{event.id}:{n}:0", endpoint=n, body=body,
                                 attempt=0, first_at=event.occurred_at.timestamp())  # fmt: skip
            queued += 1
    return queued


async def deliver(
    tenant: Tenant, *, endpoint: int, body: dict[str, Any], attempt: int, first_at: float
) -> None:
    """One attempt to POST ``body`` to endpoint number ``endpoint`` (the job function).

    Args:
        tenant: the tenant.
        endpoint: index in ``features.realtime.webhooks`` (dropped when the
            tenant no longer has it).
        body: the JSON body (event id, name, tenant, occurred_at, data).
        attempt: 0 for the first attempt.
        first_at: Unix time of the event (the retry window starts there).
    """
    settings: RealtimeSettings = tenant.settings_for("realtime")
    if endpoint >= len(settings.webhooks):
        return
    target = settings.webhooks[endpoint]
    raw = msgspec.json.encode(body)
    error = await _post(target, body, raw)
    state = _state_key(tenant, endpoint)
    now = time.time()
    if error is None:
        await tenant.redis.hset(state, mapping={"last_delivered_at": int(now), "url": target.url})
        await tenant.redis.hincrby(state, "delivered", 1)
        DELIVERIES.labels(tenant.id, "delivered").inc()
        return
    await tenant.redis.hset(state, mapping={"last_error": error[:300], "last_error_at": int(now),
                                            "url": target.url})  # fmt: skip
    backoff = min(2**attempt, MAX_BACKOFF_SECONDS)
    if now + backoff - first_at > target.retry_for_seconds:
        await tenant.redis.hincrby(state, "given_up", 1)
        DELIVERIES.labels(tenant.id, "given_up").inc()
        tenant.log.warning("webhook_given_up", url=target.url, event_id=body["id"],
                           attempts=attempt + 1, error=error)  # fmt: skip
        return
    await tenant.redis.hincrby(state, "retried", 1)
    DELIVERIES.labels(tenant.id, "retried").inc()
    tenant.log.info("webhook_retry", url=target.url, event_id=body["id"], attempt=attempt + 1,
                    in_seconds=backoff, error=error)  # fmt: skip
    await tenant.enqueue(
        JOB,
        at=datetime.now(UTC) + timedelta(seconds=backoff),
        key=f"webhook:{body['id']}:{endpoint}:{attempt + 1}",
        endpoint=endpoint, body=body, attempt=attempt + 1, first_at=first_at,
    )  # fmt: skip


async def _post(target: WebhookEndpoint, body: dict[str, Any], raw: bytes) -> str | None:
    """POST once; the error text, or None on a 2xx answer."""
    headers = {
        "Content-Type": "application/json",
        "Tenantry-Event-Id": body["id"],
        "Tenantry-Event": body["event"],
        "Tenantry-Signature": sign(target.secret, int(time.time()), raw),
        "User-Agent": "Tenantry-Webhooks/1",
    }
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(target.url, data=raw, headers=headers, allow_redirects=False) as answer,
        ):
            if 200 <= answer.status < 300:
                return None
            return f"HTTP {answer.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]


async def endpoint_states(tenant: Tenant, settings: RealtimeSettings) -> list[dict[str, Any]]:
    """Per endpoint: url, events, delivered/retried/given_up counts, last error and times."""
    states = []
    for n, endpoint in enumerate(settings.webhooks):
        raw = await tenant.redis.hgetall(_state_key(tenant, n))
        states.append(
            {
                "endpoint": n,
                "url": endpoint.url,
                "events": list(endpoint.events),
                "delivered": int(raw.get("delivered", 0)),
                "retried": int(raw.get("retried", 0)),
                "given_up": int(raw.get("given_up", 0)),
                "last_error": raw.get("last_error"),
                "last_error_at": int(raw["last_error_at"]) if "last_error_at" in raw else None,
                "last_delivered_at": int(raw["last_delivered_at"])
                if "last_delivered_at" in raw
                else None,
            }
        )
    return states
