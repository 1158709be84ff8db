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

``/admin`` routes use :func:`require_admin_token`: the ops token or a token
scoped to some tenants (:mod:`core.http.admin_tokens`), resolved once into an
:class:`~core.http.admin_tokens.AdminActor` in ``connection.state.admin_actor``
and handed to handlers as ``actor: AdminActorDep``.
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

from core.http.admin_tokens import AdminActor
from core.runtime.tenant import Tenant, TenantState

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler

__all__ = [
    "AdminActorDep",
    "Caller",
    "CallerDep",
    "ServiceUnavailable",
    "TenantDep",
    "admin_actor",
    "admin_token_valid",
    "provide_admin_actor",
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

AdminActorDep: TypeAlias = NamedDependency[AdminActor]
"""Annotate an ``/admin`` handler parameter ``actor: AdminActorDep`` to get the token's actor."""


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


INIT_DATA_CLOCK_SKEW_SECONDS = 30
"""How far in the future ``auth_date`` may be: Telegram's clock and ours may differ a
little, but init data "signed later than now" by more than that is forged or replayed
from a wrong clock."""


def _webapp_caller(connection: ASGIConnection[Any, Any, Any, Any], tenant: Tenant) -> Caller | None:
    """The WebApp user of ``X-Telegram-Init-Data``, or None without the header.

    Ages are counted in whole seconds (``auth_date`` is whole Unix seconds):
    accepted from ``max_age_seconds`` old up to
    :data:`INIT_DATA_CLOCK_SKEW_SECONDS` in the future, both inclusive.

    Raises:
        NotAuthorizedException: 401, forged or malformed init data, an
            ``auth_date`` too old or too far in the future, or no user.
    """
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
    age = int(time.time()) - int(parsed.auth_date.timestamp())
    if age > tenant.config.webapp.max_age_seconds:
        raise NotAuthorizedException(
            detail=f"{INIT_DATA_HEADER} expired: auth_date is {age} s old, the limit is "
            f"{tenant.config.webapp.max_age_seconds} s"
        )
    if -age > INIT_DATA_CLOCK_SKEW_SECONDS:
        raise NotAuthorizedException(
            detail=f"{INIT_DATA_HEADER} refused: auth_date is {-age} s in the future, more "
            f"than the {INIT_DATA_CLOCK_SKEW_SECONDS} s of clock skew allowed"
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


def admin_actor(connection: ASGIConnection[Any, Any, Any, Any]) -> AdminActor | None:
    """The admin token presented as ``Authorization: Bearer ...``, resolved, or None.

    The ops token (``TENANTRY_ADMIN_TOKEN``) resolves to the actor ``ops``
    with every tenant in scope; a scoped token to its name and tenants
    (:class:`core.http.admin_tokens.AdminActor`). Cached on the connection.
    """
    actor = getattr(connection.state, "admin_actor", None)
    if actor is None:
        authorization = connection.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        actor = connection.app.state.runtime.admin_tokens.resolve(token.strip())
        if actor is not None:
            connection.state.admin_actor = actor
    return actor


def require_admin_token(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard for ``/admin``: the ops token or a scoped admin token as ``Authorization: Bearer``.

    Leaves the :class:`~core.http.admin_tokens.AdminActor` in
    ``connection.state.admin_actor``; handlers receive it as ``actor: AdminActorDep``.

    Raises:
        NotAuthorizedException: 401, missing or wrong token, or the admin API
            is disabled because neither TENANTRY_ADMIN_TOKEN nor scoped tokens
            are configured.
    """
    if not connection.app.state.runtime.admin_tokens.enabled:
        raise NotAuthorizedException(
            detail="admin API disabled: set TENANTRY_ADMIN_TOKEN or TENANTRY_ADMIN_TOKENS_FILE"
        )
    if admin_actor(connection) is None:
        raise NotAuthorizedException(detail="admin token required (Authorization: Bearer ...)")


async def provide_admin_actor(request: Request[Any, Any, Any]) -> AdminActor:
    """Dependency ``actor`` of ``/admin`` routes: the token :func:`require_admin_token` let in.

    Raises:
        NotAuthorizedException: the route has no admin guard (a bug caught early).
    """
    actor = getattr(request.state, "admin_actor", None)
    if actor is None:
        raise NotAuthorizedException(detail="this route needs the admin guard")
    return actor


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


def admin_token_valid(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when the request carries the ops admin token (``TENANTRY_ADMIN_TOKEN``).

    For routes open to everyone that show more to ops (``GET /health``): the
    check is :func:`require_admin_token`'s, and a scoped token, which may see
    only its own tenants, counts as no token here.
    """
    try:
        require_admin_token(connection, connection.route_handler)
    except HTTPException:
        return False
    actor = admin_actor(connection)
    return actor is not None and actor.is_ops
