"""Litestar guards and dependencies for ``/api/tenants/{tenant_id}/...`` routes.

* :func:`require_api_key`: a key from the tenant's ``api.keys`` in ``X-API-Key``
  or ``Authorization: Bearer``. A plain key acts as an unscoped ``admin``; a
  key written as a mapping acts in its ``role`` within its ``scope``
  (:class:`core.config.model.ApiKey`). A ``read_only`` key is refused with 403
  ``auth.read_only`` on every method but GET and HEAD, here and nowhere else.
* :func:`require_webapp_user`: Telegram WebApp ``X-Telegram-Init-Data``,
  validated as Telegram documents ("Validating data received via the Mini
  App": secret = HMAC-SHA256("WebAppData", bot token)), with ``auth_date`` no
  older than ``webapp.max_age_seconds``. Acts as that Telegram user, with the
  roles every enabled plugin grants them (:func:`core.actors.resolve_actor`):
  a store partner opening the WebApp is a partner.
* :func:`require_api_key_or_webapp`: either of the two.
* :func:`require_role`: after one of those, the actor must hold one of the
  given roles (403 ``auth.role_required``).

Each auth guard leaves a :class:`core.actors.Actor` in ``connection.state.actor``;
handlers receive it through the ``actor`` dependency, and the resolved tenant
through ``tenant`` (annotate them ``tenant: TenantDep``, ``actor: ActorDep``).
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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec
from aiogram.utils.web_app import safe_parse_webapp_init_data
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import (
    HTTPException,
    ImproperlyConfiguredException,
    NotAuthorizedException,
    NotFoundException,
)

from core.actors import Actor, Grant, resolve_actor
from core.errors import Forbidden
from core.http.admin_tokens import AdminActor
from core.http.plugin import runtime_of
from core.runtime.tenant import Tenant, TenantState

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler

__all__ = [
    "READ_METHODS",
    "ActorDep",
    "AdminActorDep",
    "ServiceUnavailable",
    "TenantDep",
    "admin_actor",
    "admin_token_valid",
    "provide_actor",
    "provide_admin_actor",
    "provide_tenant",
    "require_admin_token",
    "require_api_key",
    "require_api_key_or_webapp",
    "require_role",
    "require_webapp_user",
    "resolve_tenant",
]

INIT_DATA_HEADER = "X-Telegram-Init-Data"

TenantDep: TypeAlias = NamedDependency[Tenant]
"""Annotate a route handler parameter ``tenant: TenantDep`` to receive the resolved tenant."""


class ServiceUnavailable(HTTPException):
    """503: the tenant exists but is not serving (migrating or failed)."""

    status_code = 503


READ_METHODS = frozenset({"GET", "HEAD"})
"""The methods a ``read_only`` API key may use."""

ActorDep: TypeAlias = NamedDependency[Actor]
"""Annotate a route handler parameter ``actor: ActorDep`` to receive who the auth guard let in."""

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
        tenant = runtime_of(connection).registry.get(tenant_id)
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


def _key_actor(entry: Any) -> Actor:
    """The actor an ``api.keys`` entry (:class:`core.config.model.ApiKey`) stands for."""
    return Actor(
        via="api_key",
        grants=(Grant(entry.role, entry.scope_values()),),
        key_name=entry.name,
        read_only=entry.read_only,
    )


def _api_key_actor(connection: ASGIConnection[Any, Any, Any, Any], tenant: Tenant) -> Actor | None:
    """The actor of the presented API key, or None without a key.

    The one place ``read_only`` is enforced: every route that takes a key
    goes through here.

    Raises:
        NotAuthorizedException: 401, a key that is not one of this tenant's.
        Forbidden: 403 ``auth.read_only``, a read-only key on a method other
            than GET or HEAD.
    """
    presented = _presented_key(connection)
    if presented is None:
        return None
    for entry in tenant.config.api.entries:
        if hmac.compare_digest(entry.key.encode(), presented.encode()):
            actor = _key_actor(entry)
            method = connection.scope.get("method", "GET")
            if actor.read_only and method not in READ_METHODS:
                raise Forbidden(
                    "auth.read_only",
                    f"this API key is read-only: {method} is refused (only GET and HEAD)",
                )
            return actor
    raise NotAuthorizedException(detail="invalid API key for this tenant")


INIT_DATA_CLOCK_SKEW_SECONDS = 30
"""How far in the future ``auth_date`` may be: Telegram's clock and ours may differ a
little, but init data "signed later than now" by more than that is forged or replayed
from a wrong clock."""


async def _webapp_actor(
    connection: ASGIConnection[Any, Any, Any, Any], tenant: Tenant
) -> Actor | None:
    """The WebApp user of ``X-Telegram-Init-Data`` as an actor, or None without the header.

    The user's roles come from every enabled plugin's ``grant_roles``
    (:func:`core.actors.resolve_actor`), as in the bot.

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
    return await resolve_actor(tenant, parsed.user.id, via="webapp", user=user)


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: one of the tenant's API keys is required; leaves its :class:`~core.actors.Actor`.

    Raises:
        NotAuthorizedException: 401, no key or a wrong one.
        Forbidden: 403 ``auth.read_only``, a read-only key on a write.
    """
    tenant = resolve_tenant(connection)
    actor = _api_key_actor(connection, tenant)
    if actor is None:
        raise NotAuthorizedException(detail="API key required (X-API-Key or Authorization: Bearer)")
    connection.state.actor = actor


async def require_webapp_user(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: valid, fresh Telegram WebApp init data is required; leaves the user's actor.

    Raises:
        NotAuthorizedException: 401, missing, forged or expired init data.
    """
    tenant = resolve_tenant(connection)
    actor = await _webapp_actor(connection, tenant)
    if actor is None:
        raise NotAuthorizedException(detail=f"{INIT_DATA_HEADER} required")
    connection.state.actor = actor


async def require_api_key_or_webapp(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: one of the tenant's API keys, or valid WebApp init data; leaves the actor.

    Raises:
        NotAuthorizedException: 401, neither present, or the one given is invalid.
        Forbidden: 403 ``auth.read_only``, a read-only key on a write.
    """
    tenant = resolve_tenant(connection)
    actor = _api_key_actor(connection, tenant) or await _webapp_actor(connection, tenant)
    if actor is None:
        raise NotAuthorizedException(detail=f"API key or {INIT_DATA_HEADER} required")
    connection.state.actor = actor


def require_role(
    *roles: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], Any], Awaitable[None]]:
    """Build a guard: the actor an auth guard left must hold one of ``roles`` (any scope).

    List it after the auth guard: ``guards=[require_api_key, require_role("admin", "partner")]``.
    Scopes are the handler's to check (``actor.allows("partner", "store", store_id)``).

    Args:
        *roles: role names (``register_roles``); at least one.

    Returns:
        The guard. It raises Forbidden (403 ``auth.role_required``, with
        ``roles``) for an actor holding none of them, and
        ImproperlyConfiguredException (500, a plugin bug) on a route without
        an auth guard before it.

    Raises:
        ValueError: no role given.
    """
    if not roles:
        raise ValueError("require_role needs at least one role name")

    # Guards are coroutines: Litestar runs a plain function guard in a worker thread.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        actor: Actor | None = getattr(connection.state, "actor", None)
        if actor is None:
            raise ImproperlyConfiguredException("require_role needs an auth guard before it")
        if not actor.has_role(*roles):
            raise Forbidden(
                "auth.role_required",
                f"this route is for the role {' or '.join(roles)}",
                roles=list(roles),
            )

    guard.__name__ = f"require_role_{'_'.join(roles)}"
    return guard


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
        actor = runtime_of(connection).admin_tokens.resolve(token.strip())
        if actor is not None:
            connection.state.admin_actor = actor
    return actor


async def require_admin_token(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for ``/admin``: see :func:`check_admin_token` (a coroutine, so no worker thread)."""
    check_admin_token(connection, handler)


def check_admin_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for ``/admin``: the ops token or a scoped admin token as ``Authorization: Bearer``.

    Leaves the :class:`~core.http.admin_tokens.AdminActor` in
    ``connection.state.admin_actor``; handlers receive it as ``actor: AdminActorDep``.

    Raises:
        NotAuthorizedException: 401, missing or wrong token, or the admin API
            is disabled because neither TENANTRY_ADMIN_TOKEN nor scoped tokens
            are configured.
    """
    if not runtime_of(connection).admin_tokens.enabled:
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

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        resolve_tenant(connection, feature)

    guard.__name__ = f"feature_{feature}_enabled"
    return guard


async def provide_tenant(request: Request[Any, Any, Any]) -> Tenant:
    """Dependency ``tenant``: the tenant resolved by the route's guards."""
    return resolve_tenant(request)


async def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    """Dependency ``actor``: who the auth guard let in (:class:`core.actors.Actor`).

    Raises:
        NotAuthorizedException: the route has no auth guard (a plugin bug caught early).
    """
    actor = getattr(request.state, "actor", None)
    if actor is None:
        raise NotAuthorizedException(detail="this route needs an auth guard")
    return actor


def admin_token_valid(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when the request carries the ops admin token (``TENANTRY_ADMIN_TOKEN``).

    For routes open to everyone that show more to ops (``GET /health``): the
    check is :func:`require_admin_token`'s, and a scoped token, which may see
    only its own tenants, counts as no token here.
    """
    try:
        check_admin_token(connection, connection.route_handler)
    except HTTPException:
        return False
    actor = admin_actor(connection)
    return actor is not None and actor.is_ops
