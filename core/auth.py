"""Litestar guards and dependencies for ``/api/tenants/{tenant_id}/...`` routes.

* :func:`require_api_key`: a key from the tenant's ``api.keys`` in ``X-API-Key``
  or ``Authorization: Bearer``. Acts with the ``admin`` role.
* :func:`require_webapp_user`: Telegram WebApp ``X-Telegram-Init-Data``,
  validated as Telegram documents ("Validating data received via the Mini
  App": secret = HMAC-SHA256("WebAppData", bot token)), with ``auth_date`` no
  older than ``webapp.max_age_seconds``. Acts as that Telegram user only.
* :func:`require_api_key_or_webapp`: either of the two.

Each guard leaves a :class:`Caller` in ``connection.state.caller``; handlers
receive it through the ``caller`` dependency, and the resolved tenant through
``tenant`` (annotate them ``tenant: TenantDep``, ``caller: CallerDep``).
A key of one tenant never opens another: keys are looked up in
the tenant named by the path only.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec
from aiogram.utils.web_app import safe_parse_webapp_init_data
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException

from core.tenant import Tenant, TenantState

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler

__all__ = [
    "Caller",
    "CallerDep",
    "ServiceUnavailable",
    "TenantDep",
    "provide_caller",
    "provide_tenant",
    "require_admin_token",
    "require_api_key",
    "require_api_key_or_webapp",
    "require_webapp_user",
    "resolve_tenant",
]

INIT_DATA_HEADER = "X-Telegram-Init-Data"

TenantDep: TypeAlias = NamedDependency[Tenant]
"""Annotate a route handler parameter ``tenant: TenantDep`` to receive the resolved tenant."""


class ServiceUnavailable(HTTPException):
    """503: the tenant exists but is not serving (migrating or failed)."""

    status_code = 503


class Caller(msgspec.Struct, frozen=True):
    """Who is calling a tenant API route.

    Attributes:
        role: ``admin`` (API key) or ``customer`` (WebApp user).
        via: ``api_key`` or ``webapp``.
        user_id: Telegram user id for WebApp callers, else None.
        user: the WebApp user's fields (``first_name``, ``username``,
            ``language_code``...), empty for API keys.
    """

    role: str
    via: str
    user_id: int | None = None
    user: dict[str, Any] = {}


CallerDep: TypeAlias = NamedDependency[Caller]
"""Annotate a route handler parameter ``caller: CallerDep`` to receive the authenticated caller."""


def resolve_tenant(
    connection: ASGIConnection[Any, Any, Any, Any], feature: str | None = None
) -> Tenant:
    """Find the tenant named by the ``tenant_id`` path parameter (cached on the connection).

    Raises:
        NotFoundException: unknown tenant, or ``feature`` is not enabled for it.
        ServiceUnavailable: the tenant is migrating, failed or stopped.
    """
    tenant = getattr(connection.state, "tenant", None)
    if tenant is None:
        tenant_id = connection.path_params.get("tenant_id", "")
        tenant = connection.app.state.runtime.registry.get(tenant_id)
        if tenant is None:
            raise NotFoundException(detail=f"unknown tenant {tenant_id!r}")
        connection.state.tenant = tenant
    if feature is not None and not tenant.enabled(feature):
        raise NotFoundException(detail=f"tenant {tenant.id!r} does not enable {feature!r}")
    if tenant.state not in (TenantState.RUNNING, TenantState.RETRYING):
        raise ServiceUnavailable(detail=f"tenant {tenant.id!r} is {tenant.state}: {tenant.detail}")
    return tenant


def _presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    key = connection.headers.get("X-API-Key")
    if key:
        return key
    authorization = connection.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _api_key_caller(
    connection: ASGIConnection[Any, Any, Any, Any], tenant: Tenant
) -> Caller | None:
    presented = _presented_key(connection)
    if presented is None:
        return None
    for key in tenant.config.api.keys:
        if key and hmac.compare_digest(key.encode(), presented.encode()):
            return Caller(role="admin", via="api_key")
    raise NotAuthorizedException(detail="invalid API key for this tenant")


def _webapp_caller(connection: ASGIConnection[Any, Any, Any, Any], tenant: Tenant) -> Caller | None:
    init_data = connection.headers.get(INIT_DATA_HEADER)
    if not init_data:
        return None
    try:
        parsed = safe_parse_webapp_init_data(tenant.config.bot.token, init_data)
    except (ValueError, TypeError, msgspec.ValidationError) as exc:
        raise NotAuthorizedException(
            detail=f"invalid {INIT_DATA_HEADER}: signature does not match"
        ) from exc
    except Exception as exc:  # malformed fields that aiogram's model refuses
        raise NotAuthorizedException(
            detail=f"invalid {INIT_DATA_HEADER}: {type(exc).__name__}"
        ) from exc
    age = time.time() - parsed.auth_date.timestamp()
    if age > tenant.config.webapp.max_age_seconds:
        raise NotAuthorizedException(
            detail=f"{INIT_DATA_HEADER} expired: auth_date is {int(age)} s old, the limit is "
            f"{tenant.config.webapp.max_age_seconds} s"
        )
    if parsed.user is None:
        raise NotAuthorizedException(detail=f"{INIT_DATA_HEADER} carries no user")
    user = parsed.user.model_dump(exclude_none=True)
    return Caller(role="customer", via="webapp", user_id=parsed.user.id, user=user)


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: the tenant's API key is required.

    Raises:
        NotAuthorizedException: 401, no key or a wrong one.
    """
    tenant = resolve_tenant(connection)
    caller = _api_key_caller(connection, tenant)
    if caller is None:
        raise NotAuthorizedException(detail="API key required (X-API-Key or Authorization: Bearer)")
    connection.state.caller = caller


def require_webapp_user(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: valid, fresh Telegram WebApp init data is required.

    Raises:
        NotAuthorizedException: 401, missing, forged or expired init data.
    """
    tenant = resolve_tenant(connection)
    caller = _webapp_caller(connection, tenant)
    if caller is None:
        raise NotAuthorizedException(detail=f"{INIT_DATA_HEADER} required")
    connection.state.caller = caller


def require_api_key_or_webapp(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: the tenant's API key, or valid WebApp init data.

    Raises:
        NotAuthorizedException: 401, neither present, or the one given is invalid.
    """
    tenant = resolve_tenant(connection)
    caller = _api_key_caller(connection, tenant) or _webapp_caller(connection, tenant)
    if caller is None:
        raise NotAuthorizedException(detail=f"API key or {INIT_DATA_HEADER} required")
    connection.state.caller = caller


def require_admin_token(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard for ``/admin``: ``Authorization: Bearer $TENANTRY_ADMIN_TOKEN``.

    Raises:
        NotAuthorizedException: 401, missing or wrong token, or the admin API
            is disabled because TENANTRY_ADMIN_TOKEN is not set.
    """
    expected = connection.app.state.runtime.settings.admin_token
    if not expected:
        raise NotAuthorizedException(detail="admin API disabled: set TENANTRY_ADMIN_TOKEN")
    authorization = connection.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise NotAuthorizedException(detail="admin token required (Authorization: Bearer ...)")


def feature_guard(feature: str) -> Any:
    """Build the guard that 404s plugin routes of tenants that do not enable ``feature``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        resolve_tenant(connection, feature)

    guard.__name__ = f"feature_{feature}_enabled"
    return guard


async def provide_tenant(request: Request[Any, Any, Any]) -> Tenant:
    """Dependency ``tenant``: the tenant resolved by the route's guards."""
    return resolve_tenant(request)


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Dependency ``caller``: who the auth guard let in.

    Raises:
        NotAuthorizedException: the route has no auth guard (a plugin bug caught early).
    """
    caller = getattr(request.state, "caller", None)
    if caller is None:
        raise NotAuthorizedException(detail="this route needs an auth guard")
    return caller
