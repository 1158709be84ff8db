"""HTTP surface of the runtime: Telegram webhooks, health, ops admin API, plugin mounts."""

from __future__ import annotations

import asyncio
import hmac
import time
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

import msgspec
import structlog
from aiogram.types import Update
from litestar import Controller, Litestar, Request, Response, Router, asgi, delete, get, post
from litestar.di import Provide
from litestar.enums import ParamType
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
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
from litestar.params import Parameter as QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from litestar.types import Receive, Scope, Send
from pydantic import ValidationError as PydanticValidationError

from core.admin_tokens import AdminActor
from core.audit import AuditEntry, admin_action, declared_tenant_id
from core.auth import (
    AdminActorDep,
    admin_token_valid,
    feature_guard,
    provide_admin_actor,
    provide_caller,
    provide_tenant,
    require_admin_token,
)
from core.bots import PREFETCHED_STATE, BotHub, fsm_state_key
from core.config import MAX_TENANT_FILE_BYTES, ConfigError, ConfigIssue, parse_tenant_text
from core.control import StorageClaim, claims_of
from core.dedupe import Claim
from core.errors import (
    STORAGE_UNAVAILABLE,
    Forbidden,
    NotFound,
    Problem,
    Unprocessable,
    default_code,
)
from core.metrics import update_counter, update_seconds
from core.plugins import call_plugin, plugin_names
from core.redaction import redact
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


MAX_UPDATE_BYTES = 1024 * 1024
"""Largest webhook body accepted (413 beyond). Updates are JSON objects of a few
kilobytes: message texts are at most 4096 characters (Bot API, sendMessage)."""


_WEBHOOK_CODES = {
    400: "webhook.malformed_update",
    401: "webhook.wrong_secret",
    404: "webhook.unknown_tenant",
    405: "http.method_not_allowed",
    413: "webhook.too_large",
    503: "webhook.retry_later",
}
"""Stable ``code`` of each webhook error answer, by status (``core.errors.Problem``)."""


def _problem(status: int, detail: str) -> tuple[int, bytes]:
    """``(status, body)`` of a webhook error: the runtime's one problem body (RFC 9457)."""
    problem = Problem(
        type="about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        code=_WEBHOOK_CODES.get(status) or default_code(status),
    )
    return status, msgspec.json.encode(problem)


def _webhook_headers(scope: Scope) -> tuple[str, int]:
    """The secret token header ("" if absent) and the declared Content-Length (0 if
    absent or not a number), read straight from the ASGI scope in one pass."""
    secret, length = "", 0
    for name, value in scope["headers"]:
        if name == _SECRET_HEADER_RAW:
            secret = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return secret, length


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

    The tenant, its secret token and the declared Content-Length are checked
    before the body is read: an unknown tenant (404), a wrong secret (401), a
    tenant not serving (503) or a declared body over the limit (413) is
    answered at once with ``Connection: close``, so a caller without the
    secret never makes the server read (or wait for) a body.
    """
    tenant_id = scope["path"].strip("/")
    headers = [(b"content-type", b"application/json")]
    if not tenant_id or "/" in tenant_id:
        status, body = _problem(404, "not found; webhooks are POST /webhook/{tenant_id}")
    elif scope["method"] != "POST":
        status, body = _problem(405, "webhooks accept POST only")
        headers.append((b"allow", b"POST"))
    else:
        runtime = scope["app"].state.runtime
        secret_token, declared_length = _webhook_headers(scope)
        admitted = _admit_update(runtime, tenant_id, secret_token)
        if type(admitted) is tuple:
            status, body = admitted
            headers.append((b"connection", b"close"))  # the body stays unread
        elif declared_length > MAX_UPDATE_BYTES:
            status, body = _problem(413, f"an update is at most {MAX_UPDATE_BYTES} bytes")
            headers.append((b"connection", b"close"))
        else:
            update_body = await _read_body(receive)
            if update_body is None:
                status, body = _problem(413, f"an update is at most {MAX_UPDATE_BYTES} bytes")
                headers.append((b"connection", b"close"))
            else:
                status, body = await _handle_update(runtime, admitted, update_body)
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
        (Telegram re-sends it). Errors are problem bodies (``core.errors.Problem``).
    """
    admitted = _admit_update(runtime, tenant_id, secret_token)
    if type(admitted) is tuple:
        return admitted
    return await _handle_update(runtime, admitted, body)


def _admit_update(runtime: Any, tenant_id: str, secret_token: str) -> Tenant | tuple[int, bytes]:
    """The tenant an update may be delivered to, or the ``(status, body)`` refusing it.

    Needs no body: 404 unknown tenant, 401 wrong or missing secret token, 503
    tenant not serving.
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
    return tenant


async def _handle_update(runtime: Any, tenant: Tenant, body: bytes) -> tuple[int, bytes]:
    """Parse, dedupe and dispatch one update of an admitted tenant (see :func:`process_update`)."""
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

    Without the ops admin token only what a load balancer or uptime check
    needs: no error texts, tenant names or rejected files, which could tell
    an outsider about the deployment (``docs/ops.md#secrets-where-they-come-from-and-what-is-never-shown``).

    Attributes:
        status: ``ok`` when PostgreSQL and Redis answer, else ``degraded``.
        database: ``ok``, else ``error`` (with the admin token, the error, redacted).
        redis: ``ok``, else ``error`` (with the admin token, the error, redacted).
        tenants: each tenant's ``id`` and ``state``; with the admin token, also
            its name, detail, mode, features, schema and prefix.
        rejected: how many tenant files failed validation; with the admin
            token, file -> its errors.
    """

    status: str
    database: str
    redis: str
    tenants: list[dict[str, Any]]
    rejected: int | dict[str, list[str]]


@get("/health", summary="Runtime and tenant health", tags=["ops"], cache=False)
async def health(request: Request[Any, Any, Any]) -> Response[HealthReport]:
    """Report PostgreSQL, Redis and every tenant's state; details only with the admin token.

    Returns:
        200 when PostgreSQL and Redis answer (tenant failures are listed but do
        not fail the runtime), 503 otherwise. With ``Authorization: Bearer
        $TENANTRY_ADMIN_TOKEN`` the full report (:class:`HealthReport`), every
        text passed through :func:`core.redaction.redact`.
    """
    runtime = request.app.state.runtime
    full = admin_token_valid(request)
    database = redis = "ok"
    try:
        async with runtime.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:
        database = redact(f"error: {exc}") if full else "error"
    try:
        await runtime.redis.ping()
    except Exception as exc:
        redis = redact(f"error: {exc}") if full else "error"
    status = "ok" if database == redis == "ok" else "degraded"
    tenants = list(runtime.registry.tenants.values())
    rejected = runtime.registry.rejected
    report = HealthReport(
        status=status,
        database=database,
        redis=redis,
        tenants=[t.describe() if full else {"id": t.id, "state": t.state} for t in tenants],
        rejected=(
            {f: [redact(str(i)) for i in issues] for f, issues in rejected.items()}
            if full
            else len(rejected)
        ),
    )
    return Response(report, status_code=200 if status == "ok" else 503)


class ClaimsAnswer(msgspec.Struct):
    """Body of ``GET /admin/claims`` and ``DELETE /admin/claims/{tenant_id}``.

    Attributes:
        claims: the claims asked for (listing).
        released: claims deleted now (release).
        kept: claims the tenant's running config still uses (release).
    """

    claims: list[StorageClaim] = []
    released: list[StorageClaim] = []
    kept: list[StorageClaim] = []


class AuditPage(msgspec.Struct):
    """Body of ``GET /admin/audit``: entries newest first.

    Attributes:
        entries: at most ``limit`` entries.
        next_before: pass as ``before`` for the next, older page; None on the last page.
    """

    entries: list[AuditEntry]
    next_before: int | None = None


OUTSIDE_SCOPE = "outside the token's scope"
"""The audit reason of a scoped token's attempt on a tenant it may not manage."""


def _unknown_tenant(tenant_id: str) -> NotFound:
    # The same answer for a tenant that does not exist and for one outside a
    # scoped token's scope: the token cannot even learn that it exists.
    return NotFound("admin.unknown_tenant", f"unknown tenant {tenant_id!r}")


def _running_text(runtime: Any, tenant_id: str) -> str:
    tenant = runtime.registry.get(tenant_id)
    return tenant.spec.text if tenant is not None and tenant.spec is not None else ""


async def _audit(
    runtime: Any,
    actor: AdminActor,
    action: str,
    tenant_id: str,
    outcome: str,
    reason: str = "",
    *,
    before: str = "",
    after: str = "",
) -> None:
    """Record one admin action (:meth:`core.audit.AuditLog.record`)."""
    await runtime.audit.record(
        actor=actor.name,
        action=action,
        tenant_id=tenant_id,
        outcome=outcome,
        reason=reason,
        before=before,
        after=after,
    )


def _issues_text(issues: list[ConfigIssue]) -> str:
    return "; ".join(str(issue) for issue in issues)


class AdminController(Controller):
    """Admin API: list, add, reload and remove tenants on a running system; claims; audit log.

    Every route needs ``Authorization: Bearer <token>``: the ops token
    (``TENANTRY_ADMIN_TOKEN``), or a token scoped to some tenants
    (:mod:`core.admin_tokens`), which sees and manages only those. Every
    change and every refused attempt of one is recorded in the audit log.
    """

    path = "/admin"
    guards = [require_admin_token]
    dependencies = {"actor": Provide(provide_admin_actor)}
    tags = ["ops"]

    @get("/tenants", summary="List tenants with their states")
    async def list_tenants(
        self, request: Request[Any, Any, Any], actor: AdminActorDep
    ) -> dict[str, Any]:
        """Return the state of every tenant in the token's scope and its rejected files."""
        registry = request.app.state.runtime.registry
        return {
            "tenants": [t.describe() for t in registry.tenants.values() if actor.may_manage(t.id)],
            "rejected": {
                f: [str(i) for i in issues]
                for f, issues in registry.rejected.items()
                if actor.may_manage(Path(f).stem)
            },
        }

    @get("/tenants/{tenant_id:str}", summary="One tenant's state")
    async def get_tenant(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any], actor: AdminActorDep
    ) -> dict[str, Any]:
        """Return one tenant's state.

        Raises:
            NotFound: unknown tenant, or one outside the token's scope.
        """
        tenant = request.app.state.runtime.registry.get(tenant_id)
        if tenant is None or not actor.may_manage(tenant_id):
            raise _unknown_tenant(tenant_id)
        return tenant.describe()

    @post(
        "/tenants",
        summary="Add or replace a tenant from a YAML body",
        description="The body is a tenant file. It is validated, written to the tenants folder as <id>.yaml and started.",
        status_code=HTTP_201_CREATED,
        # Litestar refuses a larger Content-Length before reading, and stops
        # reading a chunked body once it passes the limit.
        request_max_body_size=MAX_TENANT_FILE_BYTES,
    )
    async def put_tenant(
        self, request: Request[Any, Any, Any], actor: AdminActorDep
    ) -> Response[Any]:
        """Validate the YAML body, write ``<id>.yaml`` and start (or swap in) the tenant.

        A scoped token may upload only tenant ids in its scope (403 otherwise,
        whether or not the tenant exists), and its file reads only the
        tenant's own ``<ID>_*`` environment variables, not the runtime's
        shared allow list. No token may take a schema, Redis prefix or bot
        claimed by another tenant id (:mod:`core.control`).

        The body is parsed and validated in a worker thread, within the limits
        of :class:`core.config.YamlDocument` (size, alias expansion, nesting).

        Returns:
            201 with the tenant's state; 422 with ``errors`` (file:line: field: reason)
            when invalid or its storage is claimed (nothing changed) or when it
            could not start (a replaced tenant keeps its old config); 400 when
            the body is not UTF-8; 403 for an id outside the token's scope; 413
            when it is over :data:`core.config.MAX_TENANT_FILE_BYTES`.
        """
        runtime = request.app.state.runtime
        # A scoped token's file may not read the runtime's shared variables.
        load_options = dict(runtime.registry.load_options)
        if not actor.is_ops:
            load_options["env_allow"] = ()
        try:
            body = await request.body()
        except RequestEntityTooLarge:
            raise RequestEntityTooLarge(
                detail=f"a tenant file is at most {MAX_TENANT_FILE_BYTES} bytes"
            ) from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientException(detail="the body must be UTF-8 YAML") from None
        try:
            try:
                config, _ = await asyncio.to_thread(
                    parse_tenant_text,
                    text,
                    "<admin upload>",
                    **load_options,
                )
            except ConfigError as exc:
                log.warning(
                    "tenant_file_rejected",
                    file="<admin upload>",
                    errors=[str(i) for i in exc.issues],
                )
                raise
            except Exception as exc:  # a bug in validation must not become a 500
                issue = f"could not be loaded: {type(exc).__name__}: {exc}"
                log.error("tenant_upload_failed", error=issue, exc_info=True)
                raise ConfigError([ConfigIssue("<admin upload>", None, "", issue)]) from None
        except ConfigError as exc:
            declared = await asyncio.to_thread(declared_tenant_id, text)
            await _audit(
                runtime,
                actor,
                "tenant.change" if runtime.registry.get(declared) is not None else "tenant.add",
                declared,
                "refused",
                _issues_text(exc.issues),
                before=_running_text(runtime, declared),
                after=text,
            )
            raise Unprocessable(
                "admin.invalid_tenant_file",
                "invalid tenant file",
                errors=[str(i) for i in exc.issues],
            ) from None
        before = _running_text(runtime, config.id)
        action = "tenant.change" if runtime.registry.get(config.id) is not None else "tenant.add"
        if not actor.may_manage(config.id):
            await _audit(
                runtime,
                actor,
                action,
                config.id,
                "refused",
                OUTSIDE_SCOPE,
                before=before,
                after=text,
            )
            raise Forbidden(
                "admin.outside_scope",
                f"token {actor.name!r} may not manage tenant {config.id!r} "
                f"(its tenants: {actor.scope_text()})",
            )
        target = runtime.registry.tenants_dir / f"{config.id}.yaml"
        with admin_action(actor.name, action) as recording:
            try:
                tenant = await runtime.registry.apply_text(
                    text, write_to=target, env_allow=None if actor.is_ops else ()
                )
            except ConfigError as exc:
                await _audit(
                    runtime,
                    actor,
                    action,
                    config.id,
                    "refused",
                    _issues_text(exc.issues),
                    before=before,
                    after=text,
                )
                raise Unprocessable(
                    "admin.invalid_tenant_file",
                    "invalid tenant file",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except TenantStartError as exc:
                if not recording.recorded:
                    await _audit(
                        runtime,
                        actor,
                        action,
                        config.id,
                        "failed",
                        str(exc),
                        before=before,
                        after=text,
                    )
                raise Unprocessable(
                    "admin.tenant_start_failed", "the tenant could not start", errors=[str(exc)]
                ) from None
        if not recording.recorded:
            await _audit(runtime, actor, action, config.id, "ok", "unchanged")
        return Response(tenant.describe(), status_code=HTTP_201_CREATED)

    @post(
        "/tenants/{tenant_id:str}/reload", summary="Re-read a tenant file", status_code=HTTP_200_OK
    )
    async def reload_tenant(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any], actor: AdminActorDep
    ) -> Response[Any]:
        """Re-read ``<id>.yaml`` and swap the tenant if it changed.

        Returns:
            200 with the state; 404 no such file, or a tenant outside the
            token's scope; 422 with errors (old config keeps running).
        """
        runtime = request.app.state.runtime
        registry = runtime.registry
        missing = NotFound("admin.no_tenant_file", f"no tenant file for {tenant_id!r}")
        if not actor.may_manage(tenant_id):
            await _audit(runtime, actor, "tenant.reload", tenant_id, "refused", OUTSIDE_SCOPE)
            raise missing
        before = _running_text(runtime, tenant_id)
        with admin_action(actor.name, "tenant.reload") as recording:
            try:
                tenant = await registry.reload(tenant_id)
            except KeyError:
                reason = "no tenant file"
                await _audit(runtime, actor, "tenant.reload", tenant_id, "refused", reason)
                raise missing from None
            except ConfigError as exc:
                try:
                    after = await asyncio.to_thread(
                        (registry.tenants_dir / f"{tenant_id}.yaml").read_text, encoding="utf-8"
                    )
                except (OSError, UnicodeDecodeError):
                    after = ""
                await _audit(
                    runtime,
                    actor,
                    "tenant.reload",
                    tenant_id,
                    "refused",
                    _issues_text(exc.issues),
                    before=before,
                    after=after,
                )
                raise Unprocessable(
                    "admin.invalid_tenant_file",
                    "invalid tenant file; the running config is kept",
                    errors=[str(i) for i in exc.issues],
                ) from None
            except TenantStartError as exc:
                if not recording.recorded:
                    await _audit(runtime, actor, "tenant.reload", tenant_id, "failed", str(exc))
                raise Unprocessable(
                    "admin.tenant_start_failed",
                    "the new config could not start; the running config is kept",
                    errors=[str(exc)],
                ) from None
        if not recording.recorded:
            await _audit(runtime, actor, "tenant.reload", tenant_id, "ok", "unchanged")
        return Response(tenant.describe())

    @delete(
        "/tenants/{tenant_id:str}",
        summary="Stop a tenant and delete its file (data is kept)",
        status_code=200,
    )
    async def remove_tenant(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any], actor: AdminActorDep
    ) -> dict[str, Any]:
        """Stop the tenant's bot, delete its file; its schema and Redis keys stay, and so
        do its storage claims (``DELETE /admin/claims/{tenant_id}`` releases them).

        Raises:
            NotFound: unknown tenant, or one outside the token's scope.
        """
        runtime = request.app.state.runtime
        if not actor.may_manage(tenant_id):
            await _audit(runtime, actor, "tenant.remove", tenant_id, "refused", OUTSIDE_SCOPE)
            raise _unknown_tenant(tenant_id)
        before = _running_text(runtime, tenant_id)
        with admin_action(actor.name, "tenant.remove") as recording:
            try:
                await runtime.registry.remove(tenant_id)
            except KeyError:
                reason = "unknown tenant"
                await _audit(runtime, actor, "tenant.remove", tenant_id, "refused", reason)
                raise _unknown_tenant(tenant_id) from None
        if not recording.recorded:
            await _audit(runtime, actor, "tenant.remove", tenant_id, "ok", before=before)
        return {"id": tenant_id, "state": TenantState.STOPPED}

    @get("/claims", summary="Storage claims: which tenant id holds which schema, prefix and bot")
    async def list_claims(
        self, request: Request[Any, Any, Any], actor: AdminActorDep, tenant: str | None = None
    ) -> ClaimsAnswer:
        """Return the claims of ``tenant`` (or of every tenant) in the token's scope."""
        claims = await request.app.state.runtime.claims.held_by(
            [tenant] if tenant is not None else None
        )
        return ClaimsAnswer(claims=[c for c in claims if actor.may_manage(c.tenant_id)])

    @delete(
        "/claims/{tenant_id:str}",
        summary="Release a tenant id's storage claims (ops token only)",
        status_code=HTTP_200_OK,
    )
    async def release_claims(
        self, tenant_id: FromPath[str], request: Request[Any, Any, Any], actor: AdminActorDep
    ) -> ClaimsAnswer:
        """Release the schema, Redis prefix and bot claims of ``tenant_id``.

        Claims that the tenant's config in this runtime still uses (it is
        running or failed here) are kept; for a removed tenant every claim
        goes, and its storage can be given to another tenant id. Its data is
        not deleted. Release a removed tenant's claims only once no runtime
        serves it any more.

        Raises:
            Forbidden: a scoped token (only the ops token may release claims).
            NotFound: ``tenant_id`` holds no claims.
        """
        runtime = request.app.state.runtime
        if not actor.is_ops:
            reason = "only the ops token may release claims"
            await _audit(runtime, actor, "claim.release", tenant_id, "refused", reason)
            raise Forbidden("admin.ops_only", reason)
        loaded = runtime.registry.get(tenant_id)
        in_use = claims_of(loaded.config) if loaded is not None else []
        released, kept = await runtime.claims.release(tenant_id, in_use)
        if not released and not kept:
            await _audit(runtime, actor, "claim.release", tenant_id, "refused", "no claims")
            raise NotFound("admin.no_claims", f"tenant {tenant_id!r} holds no claims")
        described = ", ".join(f"{c.resource} {c.value!r}" for c in released) or "nothing"
        await _audit(runtime, actor, "claim.release", tenant_id, "ok", f"released {described}")
        return ClaimsAnswer(released=released, kept=kept)

    @get("/audit", summary="The audit log, newest first")
    async def read_audit(
        self,
        request: Request[Any, Any, Any],
        actor: AdminActorDep,
        tenant: str | None = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> AuditPage:
        """Return audit entries, newest first; a scoped token sees only its tenants' entries.

        Args:
            request: the request.
            actor: the token.
            tenant: only this tenant's entries.
            limit: at most this many entries (1-500, default 50).
            before: only entries older than this entry id (``next_before`` of
                the previous page).
        """
        entries = await request.app.state.runtime.audit.entries(
            actor, tenant=tenant, limit=limit, before=before
        )
        next_before = entries[-1].id if len(entries) == limit else None
        return AuditPage(entries=entries, next_before=next_before)


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
