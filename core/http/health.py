"""``GET /health``: PostgreSQL servers, Redis and tenant states; details only with the ops token."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response, get

from core.config.model import DEFAULT_DATABASE
from core.http.auth import (
    admin_token_valid,
)
from core.http.plugin import runtime_of
from core.runtime.redaction import redact

__all__ = ["HealthReport", "health"]

log = structlog.get_logger("tenantry.health")

CHECK_SECONDS = 2.0
"""How long one server's check may take (acquire plus ``SELECT 1``, or ``PING``), in seconds."""


class HealthReport(msgspec.Struct):
    """``GET /health`` body.

    Without the ops admin token only what a load balancer or uptime check
    needs: no error texts, tenant names or rejected files, which could tell
    an outsider about the deployment (``docs/ops.md#secrets-where-they-come-from-and-what-is-never-shown``).
    Server URLs never appear, with or without the token: they hold passwords.

    Attributes:
        status: ``ok`` when every PostgreSQL server and Redis answer;
            ``degraded`` (HTTP 503) when the default server or Redis does not;
            ``partial`` (HTTP 200) when only servers tenants are placed on
            (``storage.database``) do not, so the runtime stays in the load
            balancer for the tenants of the other servers.
        database: the default server (``TENANTRY_DATABASE_URL``): ``ok``, else
            ``error`` (with the admin token, the error, redacted).
        redis: ``ok``, else ``error`` (with the admin token, the error, redacted).
        tenants: each tenant's ``id`` and ``state``; on a runtime with more than
            one server also ``storage``: ``ok`` when its server and Redis
            answer, else ``error``. With the admin token, also its name,
            detail, mode, features, schema, prefix and ``database`` (its
            server's name).
        rejected: how many tenant files failed validation; with the admin
            token, file -> its errors.
        loaded: running tenants whose bot (Dispatcher and routers) is built.
        idle: running webhook tenants whose bot is not built: it is built at
            their next update (``TENANTRY_TENANTS_IDLE_SECONDS``).
        databases: only on a runtime with more than one server (absent
            otherwise, so a single-server body is as before): every server
            it has a pool for, by name (``default`` and each
            ``TENANTRY_DATABASE_URL_<NAME>``), with the same values as ``database``.
    """

    status: str
    database: str
    redis: str
    tenants: list[dict[str, Any]]
    rejected: int | dict[str, list[str]]
    loaded: int = 0
    idle: int = 0
    databases: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


async def _check_database(pool: asyncpg.Pool) -> None:
    async with pool.acquire(timeout=CHECK_SECONDS) as conn:
        await conn.fetchval("SELECT 1", timeout=CHECK_SECONDS)


async def _check_redis(redis: Any) -> None:
    await asyncio.wait_for(redis.ping(), CHECK_SECONDS)


async def _outcome(check: Any, full: bool) -> str:
    """``ok``, or ``error`` (the redacted error text when ``full``)."""
    try:
        await check
    except Exception as exc:
        # Only the exception's own text: asyncpg and redis-py name the host
        # and port they could not reach, never the DSN; passwords are redacted.
        return (
            redact(f"error: {exc}" if str(exc) else f"error: {type(exc).__name__}")
            if full
            else "error"
        )
    return "ok"


@get("/health", summary="Runtime and tenant health", tags=["ops"], cache=False)
async def health(request: Request[Any, Any, Any]) -> Response[HealthReport]:
    """Report every PostgreSQL server, Redis and every tenant's state; details only with the admin token.

    The servers are checked at the same time, each for at most
    :data:`CHECK_SECONDS`, so one unreachable server does not hold up the answer.

    Returns:
        200 when the default PostgreSQL server and Redis answer (tenant
        failures, and servers only some tenants are placed on, are listed but
        do not fail the runtime), 503 otherwise. With ``Authorization: Bearer
        $TENANTRY_ADMIN_TOKEN`` the full report (:class:`HealthReport`), every
        text passed through :func:`core.runtime.redaction.redact`.
    """
    runtime = runtime_of(request)
    full = admin_token_valid(request)
    pools: dict[str, asyncpg.Pool] = {DEFAULT_DATABASE: runtime.pool, **runtime.pools}
    names = list(pools)
    *server_states, redis = await asyncio.gather(
        *(_outcome(_check_database(pools[name]), full) for name in names),
        _outcome(_check_redis(runtime.redis), full),
    )
    databases = dict(zip(names, server_states, strict=True))
    database = databases[DEFAULT_DATABASE]
    if database != "ok" or redis != "ok":
        status = "degraded"
    elif any(state != "ok" for state in server_states):
        status = "partial"
    else:
        status = "ok"
    placed = len(pools) > 1
    tenants = list(runtime.registry.tenants.values())
    rejected = runtime.registry.rejected
    serving = [t for t in tenants if t.serving]
    loaded = sum(1 for t in serving if t.dispatcher is not None)
    entries: list[dict[str, Any]] = []
    for tenant in tenants:
        entry = tenant.describe() if full else {"id": tenant.id, "state": tenant.state}
        server = tenant.config.storage.database
        if full:
            entry["database"] = server
        if placed:
            storage_ok = redis == "ok" and databases.get(server) == "ok"
            entry["storage"] = "ok" if storage_ok else "error"
        entries.append(entry)
    report = HealthReport(
        status=status,
        database=database,
        redis=redis,
        tenants=entries,
        rejected=(
            {f: [redact(str(i)) for i in issues] for f, issues in rejected.items()}
            if full
            else len(rejected)
        ),
        loaded=loaded,
        idle=len(serving) - loaded,
        databases=databases if placed else msgspec.UNSET,
    )
    return Response(report, status_code=503 if status == "degraded" else 200)
