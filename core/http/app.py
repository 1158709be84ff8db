"""The Litestar app of a runtime: routes, error answers (one problem body), OpenAPI.

The :class:`~core.runtime.runtime.Runtime` itself lives in :mod:`core.runtime.runtime`;
:class:`core.http.plugin.RuntimePlugin` opens it with the app and injects it.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pluggy
import structlog
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIMediaType, Reference
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from core.errors import (
    PROBLEM_MEDIA_TYPE,
    STORAGE_UNAVAILABLE,
    ApiError,
    BadRequest,
    Conflict,
    Problem,
    ServiceUnavailable,
    Unprocessable,
    internal_error,
    problem_from_http_exception,
)
from core.http.admin import AdminController
from core.http.admin_store import AdminStoreController
from core.http.assets import openapi_assets_router, openapi_render_plugins
from core.http.health import health
from core.http.mounts import build_plugin_routers
from core.http.plugin import RuntimePlugin
from core.http.webhook import document_webhook, webhook
from core.runtime.runtime import Runtime
from core.runtime.settings import RuntimeSettings
from core.storage.statuses import TransitionError
from core.web.mount import build_web_routers, web_template_config

__all__ = ["create_app"]

log = structlog.get_logger("tenantry.runtime")


def _transition_error(exc: TransitionError) -> ApiError:
    """The problem answer of a refused status change, with ``current``, ``target`` and ``allowed``.

    An unknown status is a malformed request (400 ``status.unknown``); a known
    one that the machine does not allow now conflicts with the entity's
    state (409 ``status.not_allowed``).
    """
    error_class = BadRequest if exc.unknown_target else Conflict
    return error_class(
        "status.unknown" if exc.unknown_target else "status.not_allowed",
        exc.reason,
        current=exc.current,
        target=exc.target,
        allowed=exc.allowed,
    )


def _storage_unavailable(exc: Exception) -> ApiError:
    # PostgreSQL or Redis could not be reached or refused a connection: a
    # transient server-side condition, not a bug; clients should retry.
    return ServiceUnavailable(
        "storage.unavailable", "storage temporarily unavailable, retry shortly", retry_after=1
    )


def _value_refused(exc: asyncpg.DataError) -> ApiError:
    # PostgreSQL (or asyncpg, before sending) refused a value the request
    # carried: an integer beyond bigint, a NUL in a text, a date out of range
    # (SQLSTATE class 22, data exception). The statement's transaction rolled
    # back, so nothing was written; the client sent a value we cannot store.
    reason = str(exc).split("\n", 1)[0]
    if "query argument" in reason:
        # "invalid input for query argument $1: <value> (...)": keep only the why.
        reason = reason.rsplit("(", 1)[-1].rstrip(")") if "(" in reason else "invalid value"
    return Unprocessable("request.value_out_of_range", f"a value cannot be stored: {reason}")


def _refusal_status(exception: BaseException) -> int | None:
    """The status a deliberate refusal is answered with; None for a crash (a bug)."""
    if isinstance(exception, ApiError):
        return exception.status_code
    if isinstance(exception, HTTPException):
        # Litestar's own InternalServerException and the like are crashes.
        status = exception.status_code
        return status if status < 500 or status == 503 else None
    if isinstance(exception, TransitionError):
        return 400 if exception.unknown_target else 409
    if isinstance(exception, asyncpg.DataError):
        return 422
    return None


async def _log_unhandled(exception: BaseException, scope: Any) -> None:
    """after_exception hook: log each error answer once, with the tenant.

    A refusal (a 4xx, or a deliberate 503) is logged at info, at warning for
    401 and 403 (someone presents wrong credentials) and for 503, without a
    traceback: it is the client's problem or a known condition, not a crash.
    PostgreSQL/Redis outages are ``storage_unavailable`` warnings. Anything
    else is a bug: ``request_failed`` at error, with the traceback.
    """
    path_params = scope.get("path_params") or {}
    where = {
        "tenant": path_params.get("tenant_id"),
        "method": scope.get("method"),
        "path": scope.get("path"),
    }
    if isinstance(exception, STORAGE_UNAVAILABLE):
        log.warning(
            "storage_unavailable", error=f"{type(exception).__name__}: {exception}", **where
        )
        return
    status = _refusal_status(exception)
    if status is None:
        log.error("request_failed", exc_info=exception, **where)
        return
    if isinstance(exception, TransitionError):
        refusal = _transition_error(exception)
    elif isinstance(exception, asyncpg.DataError):
        refusal = _value_refused(exception)
    elif isinstance(exception, ApiError):
        refusal = exception
    else:  # Litestar's own (validation, 404, 405): logged with the code it is answered with
        refusal = problem_from_http_exception(exception)  # type: ignore[arg-type]
    code, detail = refusal.code, refusal.detail
    level = log.warning if status in (401, 403) or status >= 500 else log.info
    level("request_refused", status=status, code=code, detail=detail, **where)


def _is_problem(schema: Any) -> bool:
    ref = schema.get("$ref") if isinstance(schema, dict) else getattr(schema, "ref", None)
    return ref == "#/components/schemas/Problem"


def _document_problems(app: Litestar) -> None:
    """Give every 4xx and 5xx answer of the OpenAPI document the :class:`~core.errors.Problem` body.

    Litestar documents the errors it knows of (validation 400, ``raises=``)
    with its default ``{status_code, detail, extra}`` shape; the runtime
    answers them as ``application/problem+json``, so the document says so.
    """
    document = app.openapi_schema
    if document.components.schemas is None:
        document.components.schemas = {}
    (problem_ref,), schemas = msgspec.json.schema_components(
        [Problem], ref_template="#/components/schemas/{name}"
    )
    document.components.schemas.update(schemas)
    media = OpenAPIMediaType(schema=Reference(ref=problem_ref["$ref"]))
    for path_item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            if operation is None or not operation.responses:
                continue
            for status, response in operation.responses.items():
                if str(status)[:1] not in ("4", "5") or isinstance(response, Reference):
                    continue
                if any(_is_problem(m.schema) for m in (response.content or {}).values()):
                    continue  # documented by hand already (the webhook), media type included
                response.content = {PROBLEM_MEDIA_TYPE: media}


def create_app(
    settings: RuntimeSettings | None = None, pm: pluggy.PluginManager | None = None
) -> Litestar:
    """Build the Litestar app serving every tenant.

    Routes: ``POST /webhook/{tenant_id}``, ``GET /health``, ``GET /metrics``,
    ``/admin/...``, plugin routes under ``/api/tenants/{tenant_id}/<plugin>``,
    web pages under ``/web/{tenant_id}/`` (:mod:`core.web.mount`), OpenAPI at
    ``/schema``. The runtime starts in the app's lifespan
    (:class:`core.http.plugin.RuntimePlugin`); handlers receive it as a
    ``runtime`` dependency, and :func:`core.http.plugin.runtime_of` finds it
    from the app.
    """
    runtime = Runtime(settings or RuntimeSettings.from_env(), pm)
    prometheus = PrometheusConfig(
        app_name="tenantry",
        prefix="tenantry_http",
        group_path=True,
        labels={"tenant": lambda request: request.path_params.get("tenant_id", "")},
        # The webhook has its own per-tenant metrics (core.updates.metrics), cheaper on the hot path;
        # a WebSocket is one long "request" whose every frame the middleware would wrap.
        exclude=["/metrics", "/health", "^/webhook/", "/realtime/ws$"],
    )
    app = Litestar(
        route_handlers=[
            webhook,
            health,
            AdminController,
            AdminStoreController,
            PrometheusController,
            openapi_assets_router(),
            *build_plugin_routers(runtime.pm),
            *build_web_routers(runtime.pm, runtime.settings.public_url),
        ],
        # The staff pages and customer WebApps (core.web): Jinja templates of the core and plugins.
        template_config=web_template_config(runtime.pm),
        middleware=[prometheus.middleware],
        # One problem body (RFC 9457) for every error answer: ApiError renders
        # itself; the map converts everything else (core.errors).
        plugins=[
            RuntimePlugin(runtime),
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    exception_to_problem_detail_map={
                        HTTPException: problem_from_http_exception,
                        TransitionError: _transition_error,
                        asyncpg.DataError: _value_refused,
                        **dict.fromkeys(STORAGE_UNAVAILABLE, _storage_unavailable),
                        Exception: internal_error,
                    }
                )
            ),
        ],
        after_exception=[_log_unhandled],
        # Swagger UI from the package, not a CDN: /schema works offline.
        openapi_config=OpenAPIConfig(
            title="Tenantry",
            version="0.1.0",
            path="/schema",
            render_plugins=openapi_render_plugins(),
        ),
        debug=False,
        # Logging is configured once by core.runtime.logging (structlog JSON); Litestar
        # would otherwise install its own stdlib handlers on startup.
        logging_config=None,
    )
    document_webhook(app)
    _document_problems(app)
    return app
