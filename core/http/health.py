"""``GET /health``: PostgreSQL, Redis and tenant states; details only with the ops token."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response, get

from core.http.auth import (
    admin_token_valid,
)
from core.runtime.redaction import redact

__all__ = ["HealthReport", "health"]

log = structlog.get_logger("tenantry.health")


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
        loaded: running tenants whose bot (Dispatcher and routers) is built.
        idle: running webhook tenants whose bot is not built: it is built at
            their next update (``TENANTRY_TENANTS_IDLE_SECONDS``).
    """

    status: str
    database: str
    redis: str
    tenants: list[dict[str, Any]]
    rejected: int | dict[str, list[str]]
    loaded: int = 0
    idle: int = 0


@get("/health", summary="Runtime and tenant health", tags=["ops"], cache=False)
async def health(request: Request[Any, Any, Any]) -> Response[HealthReport]:
    """Report PostgreSQL, Redis and every tenant's state; details only with the admin token.

    Returns:
        200 when PostgreSQL and Redis answer (tenant failures are listed but do
        not fail the runtime), 503 otherwise. With ``Authorization: Bearer
        $TENANTRY_ADMIN_TOKEN`` the full report (:class:`HealthReport`), every
        text passed through :func:`core.runtime.redaction.redact`.
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
    serving = [t for t in tenants if t.serving]
    loaded = sum(1 for t in serving if t.dispatcher is not None)
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
        loaded=loaded,
        idle=len(serving) - loaded,
    )
    return Response(report, status_code=200 if status == "ok" else 503)
