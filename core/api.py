"""HTTP surface of the runtime: Telegram webhooks, health, ops admin API, plugin mounts."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import msgspec
import structlog
from aiogram.types import Update
from litestar import Controller, MediaType, Request, Response, Router, delete, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import ValidationError as PydanticValidationError

from core.auth import feature_guard, provide_caller, provide_tenant, require_admin_token
from core.bots import PREFETCHED_STATE, BotHub, fsm_state_key
from core.config import ConfigError, parse_tenant_text
from core.dedupe import Claim
from core.errors import STORAGE_UNAVAILABLE
from core.metrics import update_counter, update_seconds
from core.plugins import call_plugin, plugin_names
from core.registry import TenantStartError
from core.tenant import Tenant, TenantState

__all__ = ["AdminController", "build_plugin_routers", "health", "webhook"]

log = structlog.get_logger("tenantry.api")

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


class Problem(msgspec.Struct):
    """Body of an error response: ``detail`` says what is wrong."""

    status_code: int
    detail: str


def _problem(status: int, detail: str) -> ASGIResponse:
    return ASGIResponse(
        body=msgspec.json.encode(Problem(status_code=status, detail=detail)),
        status_code=status,
        media_type=MediaType.JSON,
    )


def _secret_token(scope: Any) -> str:
    """The X-Telegram-Bot-Api-Secret-Token header, read straight from the ASGI scope."""
    for name, value in scope["headers"]:
        if name == _SECRET_HEADER_RAW:
            return value.decode("latin-1")
    return ""


def _answer(body: bytes) -> ASGIResponse:
    return ASGIResponse(body=body, media_type=MediaType.JSON)


def _spec(description: str, body: type[msgspec.Struct] = Problem) -> ResponseSpec:
    return ResponseSpec(body, description=description)


@post(
    "/webhook/{tenant_id:str}",
    status_code=HTTP_200_OK,
    summary="Telegram webhook of one tenant",
    description=(
        "Receives a Bot API Update (the JSON object Telegram POSTs to a webhook). The "
        "X-Telegram-Bot-Api-Secret-Token header must equal the tenant's webhook secret "
        "(401 otherwise). The update is processed before 200 is returned; an update_id "
        "already processed for this bot is acknowledged and skipped."
    ),
    responses={
        200: _spec("processed, or seen before (`duplicate: true`)", WebhookAnswer),
        400: _spec("malformed JSON, or not a Telegram Update"),
        401: _spec("wrong or missing X-Telegram-Bot-Api-Secret-Token"),
        404: _spec("unknown tenant"),
        503: _spec(
            "tenant not serving, update being processed by another delivery, or storage "
            "unavailable: Telegram re-sends it"
        ),
    },
    tags=["telegram"],
)
async def webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Process one Telegram update for the path's ``tenant_id``.

    The handler takes the raw request and answers pre-encoded bodies: it runs
    for every update, so it skips Litestar's parameter model and response
    conversion (see ``docs/benchmarks.md#webhook``).

    Returns:
        200 ``{"ok": true}`` processed (or a handler bug: logged, not retried),
        200 ``{"ok": true, "duplicate": true}`` seen before,
        400 malformed JSON or not an Update, 401 wrong or missing secret token,
        404 unknown tenant, 503 tenant not serving, the update is being
        processed by another delivery, or PostgreSQL/Redis is unavailable
        (Telegram re-sends it).
    """
    runtime = request.app.state.runtime
    tenant_id = request.path_params["tenant_id"]
    tenant: Tenant | None = runtime.registry.get(tenant_id)
    if tenant is None:
        return _problem(404, f"unknown tenant {tenant_id!r}")
    bots: BotHub = runtime.bots
    presented = _secret_token(request.scope)
    if not hmac.compare_digest(presented.encode(), bots.secret_for(tenant).encode()):
        update_counter(tenant.id, "unauthorized").inc()
        return _problem(401, f"wrong or missing {SECRET_HEADER}")
    if tenant.state not in (TenantState.RUNNING, TenantState.RETRYING):
        return _problem(503, f"tenant {tenant.id!r} is {tenant.state}")
    started = time.perf_counter()
    body = await request.body()
    try:
        update = Update.model_validate_json(body, context={"bot": tenant.bot})
    except PydanticValidationError as exc:
        update_counter(tenant.id, "malformed").inc()
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = first.get("msg", "invalid")
        return _problem(
            400,
            f"not a Telegram Update: {where}: {reason}"
            if where
            else f"not a Telegram Update: {reason}",
        )
    ledger = runtime.ledger
    with tenant.track():
        seen_key = ledger.key(tenant, update.update_id)
        state_key = fsm_state_key(tenant, update)
        claim, state = await ledger.claim(seen_key, prefetch=state_key)
        if claim is Claim.DONE:
            update_counter(tenant.id, "duplicate").inc()
            return _answer(_DUPLICATE_BODY)
        if claim is Claim.IN_PROGRESS:
            update_counter(tenant.id, "in_progress").inc()
            return _problem(503, f"update {update.update_id} is being processed; retry later")
        outcome = "processed"
        if state_key is not None:
            PREFETCHED_STATE.set((state_key, state))
        try:
            # The Dispatcher runs as a task of its own, as aiogram's feed_webhook_update
            # does: every I/O wait inside a handler resumes the whole chain of
            # coroutine frames above it, and a task keeps uvicorn's and
            # Litestar's frames out of that chain (docs/benchmarks.md#webhook).
            # Awaiting it passes its exceptions on and a cancellation down.
            structlog.contextvars.bind_contextvars(tenant=tenant.id, update_id=update.update_id)
            await asyncio.get_running_loop().create_task(
                tenant.dispatcher.feed_update(tenant.bot, update)
            )
        except STORAGE_UNAVAILABLE as exc:
            # Not the handler's fault: give the update back to Telegram to re-send.
            await ledger.release(seen_key)
            update_counter(tenant.id, "storage_unavailable").inc()
            log.warning(
                "update_deferred", tenant=tenant.id, update_id=update.update_id, error=str(exc)
            )
            return _problem(
                503, "storage temporarily unavailable; Telegram will re-send the update"
            )
        except Exception:
            # A handler bug must not stop the runtime or make Telegram re-send
            # the same crashing update forever: log it and acknowledge.
            outcome = "handler_error"
            log.exception("update_failed", tenant=tenant.id, update_id=update.update_id)
        ledger.done(seen_key)
        update_counter(tenant.id, outcome).inc()
        update_seconds(tenant.id).observe(time.perf_counter() - started)
    return _answer(_OK_BODY)


class HealthReport(msgspec.Struct):
    """``GET /health`` body.

    Attributes:
        status: ``ok`` when PostgreSQL and Redis answer, else ``degraded``.
        database: ``ok`` or the error.
        redis: ``ok`` or the error.
        tenants: each tenant's id, state, detail, mode, features.
        rejected: tenant files that failed validation, with their errors.
    """

    status: str
    database: str
    redis: str
    tenants: list[dict[str, Any]]
    rejected: dict[str, list[str]]


@get("/health", summary="Runtime and tenant health", tags=["ops"], cache=False)
async def health(request: Request[Any, Any, Any]) -> Response[HealthReport]:
    """Report PostgreSQL, Redis and every tenant's state.

    Returns:
        200 when PostgreSQL and Redis answer (tenant failures are listed but do
        not fail the runtime), 503 otherwise.
    """
    runtime = request.app.state.runtime
    database = redis = "ok"
    try:
        async with runtime.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:
        database = f"error: {exc}"
    try:
        await runtime.redis.ping()
    except Exception as exc:
        redis = f"error: {exc}"
    status = "ok" if database == redis == "ok" else "degraded"
    report = HealthReport(
        status=status,
        database=database,
        redis=redis,
        tenants=[t.describe() for t in runtime.registry.tenants.values()],
        rejected={f: [str(i) for i in issues] for f, issues in runtime.registry.rejected.items()},
    )
    return Response(report, status_code=200 if status == "ok" else 503)


class AdminController(Controller):
    """Ops API: list, add, reload and remove tenants on a running system.

    Every route needs ``Authorization: Bearer $TENANTRY_ADMIN_TOKEN``.
    """

    path = "/admin"
    guards = [require_admin_token]
    tags = ["ops"]

    @get("/tenants", summary="List tenants with their states")
    async def list_tenants(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Return every tenant's state and the rejected files with their errors."""
        registry = request.app.state.runtime.registry
        return {
            "tenants": [t.describe() for t in registry.tenants.values()],
            "rejected": {f: [str(i) for i in issues] for f, issues in registry.rejected.items()},
        }

    @get("/tenants/{tenant_id:str}", summary="One tenant's state")
    async def get_tenant(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        """Return one tenant's state.

        Raises:
            NotFoundException: unknown tenant.
        """
        tenant = request.app.state.runtime.registry.get(tenant_id)
        if tenant is None:
            raise NotFoundException(detail=f"unknown tenant {tenant_id!r}")
        return tenant.describe()

    @post(
        "/tenants",
        summary="Add or replace a tenant from a YAML body",
        description="The body is a tenant file. It is validated, written to the tenants folder as <id>.yaml and started.",
        status_code=HTTP_201_CREATED,
    )
    async def put_tenant(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Validate the YAML body, write ``<id>.yaml`` and start (or swap in) the tenant.

        Returns:
            201 with the tenant's state; 422 with ``errors`` (file:line: field: reason)
            when invalid (nothing changed) or when it could not start (a replaced
            tenant keeps its old config); 400 when the body is not UTF-8.
        """
        runtime = request.app.state.runtime
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientException(detail="the body must be UTF-8 YAML") from None
        try:
            config, _ = parse_tenant_text(text, "<admin upload>")
            target = runtime.registry.tenants_dir / f"{config.id}.yaml"
            tenant = await runtime.registry.apply_text(text, write_to=target)
        except ConfigError as exc:
            return Response(
                {"detail": "invalid tenant file", "errors": [str(i) for i in exc.issues]},
                status_code=422,
            )
        except TenantStartError as exc:
            return Response(
                {"detail": "the tenant could not start", "errors": [str(exc)]}, status_code=422
            )
        return Response(tenant.describe(), status_code=HTTP_201_CREATED)

    @post(
        "/tenants/{tenant_id:str}/reload", summary="Re-read a tenant file", status_code=HTTP_200_OK
    )
    async def reload_tenant(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """Re-read ``<id>.yaml`` and swap the tenant if it changed.

        Returns:
            200 with the state; 404 no such file; 422 with errors (old config keeps running).
        """
        registry = request.app.state.runtime.registry
        try:
            tenant = await registry.reload(tenant_id)
        except KeyError:
            raise NotFoundException(detail=f"no tenant file for {tenant_id!r}") from None
        except ConfigError as exc:
            return Response(
                {
                    "detail": "invalid tenant file; the running config is kept",
                    "errors": [str(i) for i in exc.issues],
                },
                status_code=422,
            )
        except TenantStartError as exc:
            return Response(
                {
                    "detail": "the new config could not start; the running config is kept",
                    "errors": [str(exc)],
                },
                status_code=422,
            )
        return Response(tenant.describe())

    @delete(
        "/tenants/{tenant_id:str}",
        summary="Stop a tenant and delete its file (data is kept)",
        status_code=200,
    )
    async def remove_tenant(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        """Stop the tenant's bot, delete its file; its schema and Redis keys stay.

        Raises:
            NotFoundException: unknown tenant.
        """
        try:
            await request.app.state.runtime.registry.remove(tenant_id)
        except KeyError:
            raise NotFoundException(detail=f"unknown tenant {tenant_id!r}") from None
        return {"id": tenant_id, "state": TenantState.STOPPED}


def build_plugin_routers(pm: Any) -> list[Router]:
    """Mount each plugin's route handlers under ``/api/tenants/{tenant_id}/<plugin>``.

    Each mount carries a guard that answers 404 for tenants without the plugin,
    and the ``tenant`` and ``caller`` dependencies.
    """
    routers = []
    for name in plugin_names(pm):
        handlers = call_plugin(pm, name, "register_route_handlers")
        if not handlers:
            continue
        routers.append(
            Router(
                path=f"/api/tenants/{{tenant_id:str}}/{name}",
                route_handlers=list(handlers),
                guards=[feature_guard(name)],
                dependencies={
                    "tenant": Provide(provide_tenant),
                    "caller": Provide(provide_caller),
                },
                tags=[name],
            )
        )
    return routers
