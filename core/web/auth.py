"""Who is signed in to the web pages: the session cookie resolved into an :class:`~core.actors.Actor`.

* :func:`web_actor`: the actor of the request's session cookie, or None.
* :func:`require_staff`: guard of the pages' JSON routes. No session is 401
  ``web.signin_required``; a session whose actor holds none of the staff
  roles is 403 ``web.not_staff``; a write (any method but GET and HEAD)
  without the ``X-Tenantry-Web: 1`` header is 403 ``web.header_required``
  (a cross-site form cannot set it, and the SameSite cookie is not sent with
  cross-site POSTs either); a read-only API key's session is 403
  ``auth.read_only`` on writes. It leaves the actor for ``actor: ActorDep``.
* :func:`page_actor`: for page routes (HTML): the actor, or the redirect to
  sign-in / the "not allowed" page the handler returns instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.exceptions import NotAuthorizedException
from litestar.response import Redirect, Template

from core.errors import Forbidden
from core.http.auth import READ_METHODS, resolve_tenant
from core.web.pages import staff_roles, web_text
from core.web.sessions import SESSION_COOKIE, actor_of, load_session

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

    from core.actors import Actor
    from core.runtime.tenant import Tenant

__all__ = ["WEB_HEADER", "page_actor", "require_staff", "web_actor", "web_base"]

WEB_HEADER = "X-Tenantry-Web"
"""Header the pages' scripts send with every write (value ``1``)."""


def web_base(tenant: Tenant) -> str:
    """The path every page of ``tenant`` lives under: ``/web/<tenant id>``."""
    return f"/web/{tenant.id}"


async def web_actor(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    """The actor of the request's session cookie (cached on the connection), or None."""
    cached = getattr(connection.state, "web_actor", False)
    if cached is not False:
        return cached
    tenant = resolve_tenant(connection)
    record = await load_session(tenant, connection.cookies.get(SESSION_COOKIE))
    actor = None if record is None else await actor_of(tenant, record)
    connection.state.web_actor = actor
    if record is not None and record.key_sha256:
        # The key's write bucket (core.http.ratelimit.caller_identity).
        connection.state.web_key_sha256 = record.key_sha256
    return actor


async def require_staff(connection: ASGIConnection[Any, Any, Any, Any], _: Any) -> None:
    """Guard: a staff session (see the module docstring); leaves ``connection.state.actor``.

    Raises:
        NotAuthorizedException: 401, no session or an expired one.
        Forbidden: 403 ``web.not_staff``, ``web.header_required`` or ``auth.read_only``.
    """
    actor = await web_actor(connection)
    if actor is None:
        raise NotAuthorizedException(detail="sign in first: no session, or it expired")
    if not staff_roles(actor):
        raise Forbidden("web.not_staff", "these pages are for staff (admins and partners)")
    method = connection.scope.get("method", "GET")
    if method not in READ_METHODS:
        if connection.headers.get(WEB_HEADER) != "1":
            raise Forbidden("web.header_required", f"writes need the {WEB_HEADER}: 1 header")
        if actor.read_only:
            raise Forbidden("auth.read_only", f"this session's API key is read-only: {method}")
    connection.state.actor = actor


async def page_actor(
    connection: ASGIConnection[Any, Any, Any, Any], tenant: Tenant, *roles: str
) -> Actor | Redirect | Template:
    """The signed-in actor of a page holding one of ``roles``, or what to answer instead.

    Returns:
        The actor; a redirect to the sign-in page (carrying this page as
        ``next``) without a session; the "not allowed" page (403) for an
        actor without any of ``roles``.
    """
    actor = await web_actor(connection)
    if actor is None:
        target = connection.url.path
        if connection.url.query:
            target += "?" + connection.url.query
        return Redirect(f"{web_base(tenant)}/signin", query_params={"next": target})
    if not actor.has_role(*roles):
        return forbidden_page(tenant)
    return actor


def forbidden_page(tenant: Tenant) -> Template:
    """The 403 page: "you may not open this page", with a link to sign in as someone else."""
    from core.web.render import page

    return page(
        tenant,
        "core/forbidden.html",
        title=web_text(tenant, "web.forbidden_title"),
        status_code=403,
    )
