"""The Bot API protocol of one update: admit (tenant, secret, state), parse, claim
and prefetch, dispatch, metrics and logging context.

:func:`deliver` does the part every update shares and returns an :class:`Outcome`;
the webhook's HTTP mount (:mod:`core.http.webhook`) only reads the request and
sends the ``(status, body)`` :func:`handle_update` makes of it, and the poller
(:mod:`core.updates.polling`) confirms or retries by it.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import time
import weakref
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from aiogram.types import Update
from pydantic import ValidationError as PydanticValidationError

from core.errors import (
    STORAGE_UNAVAILABLE,
    Problem,
    default_code,
)
from core.runtime.lifecycle import SERVING_STATES
from core.updates.dedupe import IN_PROGRESS_TTL_SECONDS, Claim, UpdateLedger
from core.updates.fsm import PREFETCHED_STATE, fsm_state_key
from core.updates.metrics import update_counter, update_seconds

if TYPE_CHECKING:
    from core.runtime.tenant import Tenant

__all__ = [
    "SECRET_HEADER",
    "Outcome",
    "WebhookAnswer",
    "admit_update",
    "deliver",
    "handle_update",
    "parse_update",
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
processed here, but its key says ``processing`` until its lease
(IN_PROGRESS_TTL_SECONDS) lapses: every re-send would get 503 meanwhile. When Telegram re-sends it to this
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


def _deferred(tenant: Tenant, update: Update, exc: BaseException) -> Outcome:
    """An update that met a PostgreSQL/Redis outage: logged once, counted; it is delivered again."""
    log.warning("update_deferred", tenant=tenant.id, update_id=update.update_id, error=str(exc))
    update_counter(tenant.id, Outcome.DEFERRED.value).inc()
    return Outcome.DEFERRED


async def process_update(
    runtime: Any, tenant_id: str, secret_token: str, body: bytes
) -> tuple[int, bytes]:
    """Process one Telegram update delivered to ``tenant_id``'s webhook.

    Args:
        runtime: the :class:`core.runtime.runtime.Runtime`.
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
    bots = runtime.bots
    if not hmac.compare_digest(secret_token.encode(), bots.secret_for(tenant).encode()):
        update_counter(tenant.id, "unauthorized").inc()
        return problem(401, f"wrong or missing {SECRET_HEADER}")
    if tenant.state not in SERVING_STATES:
        return problem(503, f"tenant {tenant.id!r} is {tenant.state}")
    return tenant


class Outcome(enum.Enum):
    """What became of one update handed to :func:`deliver` (also its metrics label).

    Webhook answers (:func:`handle_update`): PROCESSED, HANDLER_ERROR and
    DUPLICATE are 200; IN_PROGRESS, DEFERRED and UNAVAILABLE are 503, so
    Telegram re-sends. The poller (:mod:`core.updates.polling`) confirms an
    update unless it is DEFERRED or UNAVAILABLE.
    """

    PROCESSED = "processed"
    """The tenant's Dispatcher handled it."""
    HANDLER_ERROR = "handler_error"
    """A handler raised: logged with its traceback and acknowledged, so a
    crashing update is not re-sent forever."""
    DUPLICATE = "duplicate"
    """Handled before (the ledger's ``done`` mark): skipped."""
    IN_PROGRESS = "in_progress"
    """Another delivery holds its claim and has not finished."""
    DEFERRED = "storage_unavailable"
    """PostgreSQL or Redis failed before or during handling; the claim was
    given back, so a re-delivery is handled."""
    UNAVAILABLE = "unavailable"
    """The tenant's bot could not be built (a plugin's router hook raised)."""


async def deliver(
    tenant: Tenant,
    update: Update,
    ledger: UpdateLedger,
    assemble: Callable[[Tenant], Awaitable[None]],
    *,
    take_over: bool = False,
) -> Outcome:
    """Claim, dispatch and account for one parsed update of ``tenant``: the protocol's core.

    Both ways an update arrives use it: the webhook (:func:`handle_update`)
    and the poller (:mod:`core.updates.polling`). In order: the bot is built
    if the tenant has none (lazy or idle-dropped tenants); the update is
    claimed in the ledger, reading the update's FSM state in the same Redis
    round trip; the tenant's Dispatcher handles it with that state (passed to
    :class:`PrefetchedFSM` as ``feed_update`` data, not through a context
    variable), its log lines bound to ``tenant`` and ``update_id``; the claim
    becomes ``done``; the outcome is counted in ``tenantry_updates_total``
    and the time in ``tenantry_update_seconds``.

    Args:
        tenant: a serving tenant (admitted).
        update: the Bot API Update, validated with ``context={"bot": tenant.bot}``.
        ledger: the runtime's update ledger (:class:`~core.updates.dedupe.UpdateLedger`).
        assemble: builds the tenant's bot when it has none
            (:meth:`core.runtime.registry.TenantRegistry.assemble`).
        take_over: handle an update whose claim another delivery holds
            (``in_progress``) instead of returning IN_PROGRESS. The poller
            sets it: only the holder of a bot's polling lock polls, so such a
            claim is a dead poller's.

    Returns:
        The :class:`Outcome`. Nothing is raised for a handler's failure.
    """
    started = time.perf_counter()
    if tenant.dispatcher is None:
        try:
            await assemble(tenant)
        except Exception:
            log.exception("tenant_assembly_failed", tenant=tenant.id)
            update_counter(tenant.id, Outcome.UNAVAILABLE.value).inc()
            return Outcome.UNAVAILABLE
    tenant.last_used = time.monotonic()
    with tenant.track():
        seen_key = ledger.key(tenant, update.update_id)
        state_key = fsm_state_key(tenant, update)
        try:
            if _UNSURE_CLAIMS:
                await _give_back_unsure_claim(ledger, seen_key)
            claim, state = await ledger.claim(seen_key, prefetch=state_key)
        except STORAGE_UNAVAILABLE as exc:
            _claim_unsure(ledger, seen_key)
            return _deferred(tenant, update, exc)
        if claim is Claim.DONE:
            update_counter(tenant.id, Outcome.DUPLICATE.value).inc()
            return Outcome.DUPLICATE
        if claim is Claim.IN_PROGRESS:
            if not take_over:
                update_counter(tenant.id, Outcome.IN_PROGRESS.value).inc()
                return Outcome.IN_PROGRESS
            tenant.log.info("update_claim_taken_over", update_id=update.update_id)
            ledger.take_over(seen_key)
            state_key = None  # the prefetch is read only with a claim taken
        outcome = Outcome.PROCESSED
        # Log lines of this update and of its handlers name the tenant and update.
        bound = structlog.contextvars.bind_contextvars(tenant=tenant.id, update_id=update.update_id)
        try:
            feed = (
                tenant.dispatcher.feed_update(tenant.bot, update)
                if state_key is None
                else tenant.dispatcher.feed_update(
                    tenant.bot, update, **{PREFETCHED_STATE: (state_key, state)}
                )
            )
            # The Dispatcher runs as a task of its own, as aiogram's feed_webhook_update
            # does: every I/O wait inside a handler resumes the whole chain of
            # coroutine frames above it, and a task keeps uvicorn's and
            # Litestar's frames out of that chain (docs/benchmarks.md#webhook).
            # Awaiting it passes its exceptions on and a cancellation down.
            await asyncio.get_running_loop().create_task(feed)
        except STORAGE_UNAVAILABLE as exc:
            # Not the handler's fault: give the update back to be delivered again.
            try:
                await ledger.release(seen_key, quiet=False)
            except STORAGE_UNAVAILABLE:
                # Redis is away too: the claim is given back at the re-delivery instead.
                _claim_unsure(ledger, seen_key)
            return _deferred(tenant, update, exc)
        except asyncio.CancelledError:
            # A poller stopped mid-update (shutdown, lost lock): the next one handles it.
            await ledger.release(seen_key)
            raise
        except Exception:
            # A handler bug must not stop the runtime or make Telegram re-send
            # the same crashing update forever: log it and acknowledge.
            outcome = Outcome.HANDLER_ERROR
            log.exception("update_failed", tenant=tenant.id, update_id=update.update_id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
        if take_over:
            await ledger.complete(seen_key)  # before the poller's next update
        else:
            ledger.done(seen_key)
        update_counter(tenant.id, outcome.value).inc()
        update_seconds(tenant.id).observe(time.perf_counter() - started)
    return outcome


def parse_update(tenant: Tenant, body: bytes) -> Update | tuple[int, bytes]:
    """The Bot API Update in ``body``, or the 400 answer refusing it (counted as ``malformed``)."""
    try:
        return Update.model_validate_json(body, context={"bot": tenant.bot})
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


_ANSWERS: dict[Outcome, Callable[[Tenant, Update], tuple[int, bytes]]] = {
    Outcome.PROCESSED: lambda _tenant, _update: (200, _OK_BODY),
    Outcome.HANDLER_ERROR: lambda _tenant, _update: (200, _OK_BODY),
    Outcome.DUPLICATE: lambda _tenant, _update: (200, _DUPLICATE_BODY),
    Outcome.IN_PROGRESS: lambda _tenant, update: problem(
        503, f"update {update.update_id} is being processed; retry later"
    ),
    Outcome.DEFERRED: lambda _tenant, _update: problem(
        503, "storage temporarily unavailable; Telegram will re-send the update"
    ),
    Outcome.UNAVAILABLE: lambda tenant, _update: problem(
        503, f"tenant {tenant.id!r} could not build its bot; retry later"
    ),
}
"""The webhook's ``(status, body)`` for each :class:`Outcome`."""


async def handle_update(runtime: Any, tenant: Tenant, body: bytes) -> tuple[int, bytes]:
    """Parse one update of an admitted tenant, :func:`deliver` it, and answer (see :func:`process_update`)."""
    update = parse_update(tenant, body)
    if type(update) is tuple:
        return update
    outcome = await deliver(tenant, update, runtime.ledger, runtime.registry.assemble)  # type: ignore[arg-type]
    return _ANSWERS[outcome](tenant, update)  # type: ignore[arg-type]
