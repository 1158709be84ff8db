"""The Bot API webhook protocol of one update: admit (tenant, secret, state), parse, claim
and prefetch, dispatch, metrics and logging context; answers as ``(status, body)``.

The HTTP mount (:mod:`core.http.webhook`) only reads the request and sends what
this module returns.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import weakref
from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from aiogram.types import Update
from pydantic import ValidationError as PydanticValidationError

from core.errors import (
    STORAGE_UNAVAILABLE,
    Problem,
    default_code,
)
from core.runtime.tenant import Tenant, TenantState
from core.updates.bots import PREFETCHED_STATE, BotHub, fsm_state_key
from core.updates.dedupe import IN_PROGRESS_TTL_SECONDS, Claim, UpdateLedger
from core.updates.metrics import update_counter, update_seconds

__all__ = [
    "SECRET_HEADER",
    "WebhookAnswer",
    "admit_update",
    "handle_update",
    "problem",
    "process_update",
]

log = structlog.get_logger("tenantry.protocol")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_HEADER_RAW = SECRET_HEADER.lower().encode()  # ASGI header names are lowercase bytes


class WebhookAnswer(msgspec.Struct):
    """Body of a webhook response.

    Attributes:
        ok: True when the update was accepted.
        duplicate: True when this update_id was processed before.
    """

    ok: bool
    duplicate: bool = False


# Encoded once: the webhook answers these on every update.
_OK_BODY = msgspec.json.encode(WebhookAnswer(ok=True))
_DUPLICATE_BODY = msgspec.json.encode(WebhookAnswer(ok=True, duplicate=True))


_WEBHOOK_CODES = {
    400: "webhook.malformed_update",
    401: "webhook.wrong_secret",
    404: "webhook.unknown_tenant",
    405: "http.method_not_allowed",
    413: "webhook.too_large",
    503: "webhook.retry_later",
}
"""Stable ``code`` of each webhook error answer, by status (``core.errors.Problem``)."""


def problem(status: int, detail: str) -> tuple[int, bytes]:
    """``(status, body)`` of a webhook error: the runtime's one problem body (RFC 9457)."""
    problem = Problem(
        type="about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=_WEBHOOK_CODES.get(status) or default_code(status),
    )
    return status, msgspec.json.encode(problem)


# Ends a claim only while it still says ``processing`` (a done mark is never removed).
_GIVE_BACK_SCRIPT = """
if redis.call('GET', KEYS[1]) == 'processing' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_UNSURE_CLAIMS: weakref.WeakKeyDictionary[UpdateLedger, dict[str, float]] = (
    weakref.WeakKeyDictionary()
)
"""Per ledger (one per runtime): update keys whose claim call failed, -> when (monotonic).

Redis may have run the claim (``SET NX`` ``processing``) and gone away before
its reply reached us (a restart under load). The update got 503 and was never
processed here, but its key says ``processing`` for IN_PROGRESS_TTL_SECONDS:
every re-send would get 503 for 2 minutes. When Telegram re-sends it to this
runtime, the claim is given back first (deleted if it still says
``processing``) and the update is claimed again. Entries older than the claim's
TTL are dropped: by then the claim expired anyway.
"""


def _claim_unsure(ledger: UpdateLedger, key: str) -> None:
    unsure = _UNSURE_CLAIMS.setdefault(ledger, {})
    now = time.monotonic()
    if len(unsure) > 1000:
        for stale in [k for k, at in unsure.items() if now - at > IN_PROGRESS_TTL_SECONDS]:
            del unsure[stale]
    # The first failure counts: a claim of ours, if any, is at most that old.
    unsure.setdefault(key, now)


async def _give_back_unsure_claim(ledger: UpdateLedger, key: str) -> None:
    """End the claim of ``key`` this runtime may hold without knowing it (see ``_UNSURE_CLAIMS``).

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: Redis is still unreachable
            (the key stays unsure).
    """
    unsure = _UNSURE_CLAIMS.get(ledger)
    if unsure is None:
        return
    # Popped before the await: of two deliveries at once only the first gives it back.
    claimed_at = unsure.pop(key, None)
    if not unsure:
        del _UNSURE_CLAIMS[ledger]  # the hot path checks the dict's truth only
    if claimed_at is None or time.monotonic() - claimed_at > IN_PROGRESS_TTL_SECONDS:
        return
    try:
        await ledger.redis.eval(_GIVE_BACK_SCRIPT, 1, key)
    except BaseException:
        _UNSURE_CLAIMS.setdefault(ledger, {})[key] = claimed_at
        raise


def _deferred(tenant: Tenant, update: Update, exc: BaseException) -> tuple[int, bytes]:
    """503 for an update that met a PostgreSQL/Redis outage: Telegram re-sends it."""
    log.warning("update_deferred", tenant=tenant.id, update_id=update.update_id, error=str(exc))
    return problem(503, "storage temporarily unavailable; Telegram will re-send the update")


async def process_update(
    runtime: Any, tenant_id: str, secret_token: str, body: bytes
) -> tuple[int, bytes]:
    """Process one Telegram update delivered to ``tenant_id``'s webhook.

    Args:
        runtime: the :class:`core.http.app.Runtime`.
        tenant_id: from the path.
        secret_token: the X-Telegram-Bot-Api-Secret-Token header ("" if absent);
            it must equal the tenant's webhook secret (Bot API, setWebhook.secret_token).
        body: the request body, a Bot API Update as JSON.

    Returns:
        ``(HTTP status, JSON body)``: 200 ``{"ok": true}`` processed (or a
        handler bug: logged, not retried); 200 ``{"ok": true, "duplicate": true}``
        seen before; 400 malformed JSON or not an Update; 401 wrong or missing
        secret token; 404 unknown tenant; 503 tenant not serving, the update is
        being processed by another delivery, or PostgreSQL/Redis is unavailable
        (Telegram re-sends it). Errors are problem bodies (``core.errors.Problem``).
    """
    admitted = admit_update(runtime, tenant_id, secret_token)
    if type(admitted) is tuple:
        return admitted
    return await handle_update(runtime, admitted, body)


def admit_update(runtime: Any, tenant_id: str, secret_token: str) -> Tenant | tuple[int, bytes]:
    """The tenant an update may be delivered to, or the ``(status, body)`` refusing it.

    Needs no body: 404 unknown tenant, 401 wrong or missing secret token, 503
    tenant not serving.
    """
    tenant: Tenant | None = runtime.registry.get(tenant_id)
    if tenant is None:
        return problem(404, f"unknown tenant {tenant_id!r}")
    bots: BotHub = runtime.bots
    if not hmac.compare_digest(secret_token.encode(), bots.secret_for(tenant).encode()):
        update_counter(tenant.id, "unauthorized").inc()
        return problem(401, f"wrong or missing {SECRET_HEADER}")
    if tenant.state not in (TenantState.RUNNING, TenantState.RETRYING):
        return problem(503, f"tenant {tenant.id!r} is {tenant.state}")
    return tenant


async def handle_update(runtime: Any, tenant: Tenant, body: bytes) -> tuple[int, bytes]:
    """Parse, dedupe and dispatch one update of an admitted tenant (see :func:`process_update`)."""
    started = time.perf_counter()
    try:
        update = Update.model_validate_json(body, context={"bot": tenant.bot})
    except PydanticValidationError as exc:
        update_counter(tenant.id, "malformed").inc()
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = first.get("msg", "invalid")
        return problem(
            400,
            f"not a Telegram Update: {where}: {reason}"
            if where
            else f"not a Telegram Update: {reason}",
        )
    if tenant.dispatcher is None:
        # A lazily started or idle-dropped webhook tenant: its bot is built now, once.
        try:
            await runtime.registry.assemble(tenant)
        except Exception:
            log.exception("tenant_assembly_failed", tenant=tenant.id)
            update_counter(tenant.id, "unavailable").inc()
            return problem(503, f"tenant {tenant.id!r} could not build its bot; retry later")
    tenant.last_used = time.monotonic()
    ledger = runtime.ledger
    with tenant.track():
        seen_key = ledger.key(tenant, update.update_id)
        state_key = fsm_state_key(tenant, update)
        try:
            if _UNSURE_CLAIMS:
                await _give_back_unsure_claim(ledger, seen_key)
            claim, state = await ledger.claim(seen_key, prefetch=state_key)
        except STORAGE_UNAVAILABLE as exc:
            _claim_unsure(ledger, seen_key)
            update_counter(tenant.id, "storage_unavailable").inc()
            return _deferred(tenant, update, exc)
        if claim is Claim.DONE:
            update_counter(tenant.id, "duplicate").inc()
            return 200, _DUPLICATE_BODY
        if claim is Claim.IN_PROGRESS:
            update_counter(tenant.id, "in_progress").inc()
            return problem(503, f"update {update.update_id} is being processed; retry later")
        outcome = "processed"
        if state_key is not None:
            PREFETCHED_STATE.set((state_key, state))
        # Log lines of this request and of its handlers name the tenant and update.
        structlog.contextvars.bind_contextvars(tenant=tenant.id, update_id=update.update_id)
        try:
            # The Dispatcher runs as a task of its own, as aiogram's feed_webhook_update
            # does: every I/O wait inside a handler resumes the whole chain of
            # coroutine frames above it, and a task keeps uvicorn's and
            # Litestar's frames out of that chain (docs/benchmarks.md#webhook).
            # Awaiting it passes its exceptions on and a cancellation down.
            await asyncio.get_running_loop().create_task(
                tenant.dispatcher.feed_update(tenant.bot, update)
            )
        except STORAGE_UNAVAILABLE as exc:
            # Not the handler's fault: give the update back to Telegram to re-send.
            try:
                await ledger.redis.delete(seen_key)  # UpdateLedger.release, minus its silence
            except STORAGE_UNAVAILABLE:
                # Redis is away too: the claim is given back at the re-send instead.
                _claim_unsure(ledger, seen_key)
            update_counter(tenant.id, "storage_unavailable").inc()
            return _deferred(tenant, update, exc)
        except Exception:
            # A handler bug must not stop the runtime or make Telegram re-send
            # the same crashing update forever: log it and acknowledge.
            outcome = "handler_error"
            log.exception("update_failed", tenant=tenant.id, update_id=update.update_id)
        ledger.done(seen_key)
        update_counter(tenant.id, outcome).inc()
        update_seconds(tenant.id).observe(time.perf_counter() - started)
    return 200, _OK_BODY
