"""HTTP surface of the runtime: Telegram webhooks, health, ops admin API, plugin mounts."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import msgspec
import structlog
from aiogram.types import Update
from litestar import Controller, Litestar, Request, Response, Router, asgi, delete, get, post
from litestar.di import Provide
from litestar.enums import ParamType
from litestar.exceptions import ClientException, NotFoundException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Schema,
)
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from litestar.types import Receive, Scope, Send
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

__all__ = [
    "AdminController",
    "build_plugin_routers",
    "document_webhook",
    "health",
    "process_update",
    "webhook",
]

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


MAX_UPDATE_BYTES = 1024 * 1024
"""Largest webhook body accepted (413 beyond). Updates are JSON objects of a few
kilobytes: message texts are at most 4096 characters (Bot API, sendMessage)."""


def _problem(status: int, detail: str) -> tuple[int, bytes]:
    return status, msgspec.json.encode(Problem(status_code=status, detail=detail))


def _secret_token(scope: Scope) -> str:
    """The X-Telegram-Bot-Api-Secret-Token header, read straight from the ASGI scope."""
    for name, value in scope["headers"]:
        if name == _SECRET_HEADER_RAW:
            return value.decode("latin-1")
    return ""


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it exceeds :data:`MAX_UPDATE_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_UPDATE_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@asgi("/webhook", is_mount=True, copy_scope=False)
async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /webhook/{tenant_id}``: Telegram delivers one update of a tenant's bot.

    A Litestar ASGI mount rather than a ``@post`` route: it runs for every
    update, and skipping Litestar's request, parameter and response objects
    saves about a third of the HTTP layer's CPU (``docs/benchmarks.md#webhook``).
    Litestar still routes it, runs the app middleware and turns an unexpected
    exception into a logged 500. See :func:`process_update` for the answers;
    also 404 for a path without a single tenant id, 405 for another method and
    413 for a body over :data:`MAX_UPDATE_BYTES`.
    """
    tenant_id = scope["path"].strip("/")
    headers = [(b"content-type", b"application/json")]
    if not tenant_id or "/" in tenant_id:
        status, body = _problem(404, "not found; webhooks are POST /webhook/{tenant_id}")
    elif scope["method"] != "POST":
        status, body = _problem(405, "webhooks accept POST only")
        headers.append((b"allow", b"POST"))
    else:
        update_body = await _read_body(receive)
        if update_body is None:
            status, body = _problem(413, f"an update is at most {MAX_UPDATE_BYTES} bytes")
        else:
            status, body = await process_update(
                scope["app"].state.runtime, tenant_id, _secret_token(scope), update_body
            )
    if status == 503:  # as every 503 of the runtime: a retry in a second may succeed
        headers.append((b"retry-after", b"1"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _deferred(tenant: Tenant, update: Update, exc: BaseException) -> tuple[int, bytes]:
    """503 for an update that met a PostgreSQL/Redis outage: Telegram re-sends it."""
    log.warning("update_deferred", tenant=tenant.id, update_id=update.update_id, error=str(exc))
    return _problem(503, "storage temporarily unavailable; Telegram will re-send the update")


def document_webhook(app: Litestar) -> None:
    """Add ``POST /webhook/{tenant_id}`` to the app's OpenAPI document.

    Litestar leaves ASGI mounts out of the schema it generates; the document
    is generated once and cached, so the operation is added to it here. The
    body schemas come from the msgspec Structs (``msgspec.json.schema_components``).
    """
    document = app.openapi_schema
    (answer, problem_ref), schemas = msgspec.json.schema_components(
        [WebhookAnswer, Problem], ref_template="#/components/schemas/{name}"
    )
    if document.components.schemas is None:
        document.components.schemas = {}
    document.components.schemas.update(schemas)

    def response(description: str, schema: dict[str, Any] = problem_ref) -> OpenAPIResponse:
        return OpenAPIResponse(
            description=description,
            content={"application/json": OpenAPIMediaType(schema=schema)},  # type: ignore[arg-type]
        )

    document.paths["/webhook/{tenant_id}"] = PathItem(
        post=Operation(
            tags=["telegram"],
            summary="Telegram webhook of one tenant",
            description=(
                "Receives a Bot API Update (the JSON object Telegram POSTs to a webhook). "
                "The X-Telegram-Bot-Api-Secret-Token header must equal the tenant's webhook "
                "secret. The update is processed before 200 is returned; an update_id already "
                "processed for this bot is acknowledged and skipped."
            ),
            operation_id="TelegramWebhook",
            parameters=[
                Parameter(
                    name="tenant_id",
                    param_in=ParamType.PATH,
                    required=True,
                    schema=Schema(type=OpenAPIType.STRING),
                ),
                Parameter(
                    name=SECRET_HEADER,
                    param_in=ParamType.HEADER,
                    required=True,
                    schema=Schema(type=OpenAPIType.STRING),
                ),
            ],
            request_body=RequestBody(
                content={
                    "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))
                },
                description="A Bot API Update (https://core.telegram.org/bots/api#update).",
                required=True,
            ),
            responses={
                "200": response("processed, or seen before (duplicate: true)", answer),
                "400": response("malformed JSON, or not a Telegram Update"),
                "401": response("wrong or missing X-Telegram-Bot-Api-Secret-Token"),
                "404": response("unknown tenant"),
                "405": response("not a POST"),
                "413": response(f"body over {MAX_UPDATE_BYTES} bytes"),
                "503": response(
                    "tenant not serving, update being processed by another delivery, or "
                    "storage unavailable: Telegram re-sends it"
                ),
            },
        )
    )


async def process_update(
    runtime: Any, tenant_id: str, secret_token: str, body: bytes
) -> tuple[int, bytes]:
    """Process one Telegram update delivered to ``tenant_id``'s webhook.

    Args:
        runtime: the :class:`core.app.Runtime`.
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
        (Telegram re-sends it). Errors are ``{"status_code": ..., "detail": ...}``.
    """
    tenant: Tenant | None = runtime.registry.get(tenant_id)
    if tenant is None:
        return _problem(404, f"unknown tenant {tenant_id!r}")
    bots: BotHub = runtime.bots
    if not hmac.compare_digest(secret_token.encode(), bots.secret_for(tenant).encode()):
        update_counter(tenant.id, "unauthorized").inc()
        return _problem(401, f"wrong or missing {SECRET_HEADER}")
    if tenant.state not in (TenantState.RUNNING, TenantState.RETRYING):
        return _problem(503, f"tenant {tenant.id!r} is {tenant.state}")
    started = time.perf_counter()
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
        try:
            claim, state = await ledger.claim(seen_key, prefetch=state_key)
        except STORAGE_UNAVAILABLE as exc:
            update_counter(tenant.id, "storage_unavailable").inc()
            return _deferred(tenant, update, exc)
        if claim is Claim.DONE:
            update_counter(tenant.id, "duplicate").inc()
            return 200, _DUPLICATE_BODY
        if claim is Claim.IN_PROGRESS:
            update_counter(tenant.id, "in_progress").inc()
            return _problem(503, f"update {update.update_id} is being processed; retry later")
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
            await ledger.release(seen_key)
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
