"""The tenant's web index and staff sign-in, under ``/web/{tenant_id}``.

Three ways in, each ending in a session cookie (:mod:`core.web.sessions`):

* a one-time link the bot sends to an admin or partner (``GET /signin/link``
  shows a button whose POST redeems it, so link previews cannot use it up);
* Telegram WebApp init data of an admin or partner (``POST /signin/webapp``,
  done by the page's script when opened inside Telegram);
* an API key typed into the form (``POST /signin``), for desktop use.

Only staff get a session: an actor holding nothing but ``customer`` is
refused (``web.signin_not_staff``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, JSONBody
from litestar.response import Redirect, Template

from core.actors import resolve_actor
from core.errors import Forbidden
from core.http.auth import ActorDep, TenantDep, require_webapp_user
from core.runtime.contributions import contributions_of
from core.runtime.tenant import Tenant
from core.web.auth import web_actor, web_base
from core.web.links import site_url
from core.web.mount import plugins_of
from core.web.pages import StaffPage, staff_roles, web_text
from core.web.render import page
from core.web.sessions import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SessionRecord,
    end_session,
    key_digest,
    redeem_link,
    start_session,
)

__all__ = ["SignInController"]


class KeyForm(msgspec.Struct, frozen=True):
    """The API-key sign-in form: ``key`` and the page to open after (``next``)."""

    key: Annotated[str, msgspec.Meta(max_length=512)] = ""
    next: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class LinkForm(msgspec.Struct, frozen=True):
    """The sign-in link's confirmation form: the link's ``token``."""

    token: Annotated[str, msgspec.Meta(max_length=128)] = ""


class WebAppSignIn(msgspec.Struct, frozen=True):
    """Body of ``POST /signin/webapp``: the page to open after (``next``)."""

    next: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class SignedIn(msgspec.Struct, frozen=True):
    """Answer of ``POST /signin/webapp``: where to go now."""

    next: str


_FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


def _safe_next(tenant: Tenant, target: str) -> str:
    """``target`` when it is a page of this tenant, else the tenant's web index (no open redirects)."""
    base = web_base(tenant) + "/"
    if target.startswith(base) and "//" not in target and "\\" not in target:
        return target
    return base


def _session_cookie(tenant: Tenant, request: Request[Any, Any, Any], token: str) -> Cookie:
    secure = request.url.scheme == "https" or site_url(tenant).startswith("https:")
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path=web_base(tenant) + "/",
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def _pages_for(tenant: Tenant, roles: frozenset[str]) -> list[tuple[str, StaffPage]]:
    """(plugin, page) pairs of the tenant's enabled plugins that ``roles`` may open."""
    table = contributions_of(plugins_of(tenant)).web_pages
    return [
        (plugin, staff_page)
        for plugin, pages in table.items()
        if tenant.enabled(plugin)
        for staff_page in pages.staff_pages
        if roles & set(staff_page.roles)
    ]


def _signin_form(tenant: Tenant, next_path: str, error: str = "", status: int = 200) -> Template:
    return page(
        tenant,
        "core/signin.html",
        title=web_text(tenant, "web.signin_title"),
        status_code=status,
        next=next_path,
        error=error,
        data={"webapp_url": f"{web_base(tenant)}/signin/webapp", "next": next_path},
    )


def _who(actor: Any) -> str:
    if actor.via == "api_key":
        return f"API key {actor.key_name}" if actor.key_name else "API key"
    user = actor.user or {}
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return name or str(actor.user_id)


class SignInController(Controller):
    """The web index, sign-in (link, WebApp, API key) and sign-out."""

    path = "/"

    @get("/", name="web-index")
    async def index(self, tenant: TenantDep, request: Request[Any, Any, Any]) -> Any:
        """The pages the signed-in staff member may open; the sign-in form otherwise."""
        actor = await web_actor(request)
        if actor is None or not staff_roles(actor):
            return _signin_form(tenant, web_base(tenant) + "/")
        pages = _pages_for(tenant, actor.roles)
        return page(
            tenant,
            "core/index.html",
            title=web_text(tenant, "web.index_title"),
            pages=pages,
            who=_who(actor),
        )

    @get("/signin")
    async def signin_form(
        self, tenant: TenantDep, next: FromQuery[str] = "", expired: FromQuery[bool] = False
    ) -> Template:
        """The sign-in page: the API-key form, and WebApp sign-in when opened inside Telegram.

        ``expired=1`` is how a page sends back someone whose session ended
        (``signInAgain`` in ``ui.js``): the form says so.
        """
        error = web_text(tenant, "web.signin_required") if expired else ""
        return _signin_form(tenant, _safe_next(tenant, next), error)

    @post("/signin", status_code=303)
    async def signin_key(
        self,
        tenant: TenantDep,
        request: Request[Any, Any, Any],
        data: Annotated[KeyForm, _FORM],
    ) -> Response[Any]:
        """Sign in with one of the tenant's API keys of a staff role; 401 with the form again if not."""
        next_path = _safe_next(tenant, data.next)
        digest = key_digest(tenant, data.key.strip()) if data.key.strip() else None
        if digest is None:
            tenant.log.info("web_signin_refused", via="api_key")
            return _signin_form(tenant, next_path, web_text(tenant, "web.signin_bad_key"), 401)
        token = await start_session(tenant, SessionRecord(via="api_key", key_sha256=digest))
        tenant.log.info("web_signed_in", via="api_key")
        return Redirect(
            next_path, status_code=303, cookies=[_session_cookie(tenant, request, token)]
        )

    @get("/signin/link")
    async def link_page(self, tenant: TenantDep, token: FromQuery[str] = "") -> Template:
        """The page of a sign-in link: one button (pressed by its script) that redeems it."""
        return page(
            tenant,
            "core/signin_link.html",
            title=web_text(tenant, "web.signin_title"),
            token=token[:128],
        )

    @post("/signin/link", status_code=303)
    async def redeem(
        self,
        tenant: TenantDep,
        request: Request[Any, Any, Any],
        data: Annotated[LinkForm, _FORM],
    ) -> Response[Any]:
        """Redeem a sign-in link (once) into a session and open its page; 403 page if used or expired."""
        link = await redeem_link(tenant, data.token)
        if link is None:
            return _signin_form(
                tenant, web_base(tenant) + "/", web_text(tenant, "web.signin_bad_link"), 403
            )
        actor = await resolve_actor(tenant, link.user_id, via="webapp", user=link.user)
        if not staff_roles(actor):
            return _signin_form(
                tenant, web_base(tenant) + "/", web_text(tenant, "web.signin_not_staff"), 403
            )
        token = await start_session(
            tenant, SessionRecord(via="link", user_id=link.user_id, user=link.user)
        )
        tenant.log.info("web_signed_in", via="link", user_id=link.user_id)
        return Redirect(
            _safe_next(tenant, link.next_path),
            status_code=303,
            cookies=[_session_cookie(tenant, request, token)],
        )

    @post("/signin/webapp", guards=[require_webapp_user], status_code=200)
    async def signin_webapp(
        self,
        tenant: TenantDep,
        actor: ActorDep,
        request: Request[Any, Any, Any],
        data: JSONBody[WebAppSignIn],
    ) -> Response[SignedIn]:
        """Sign in an admin or partner from the WebApp's ``X-Telegram-Init-Data``.

        Raises:
            Forbidden: 403 ``web.not_staff``, a customer.
        """
        if not staff_roles(actor):
            raise Forbidden("web.not_staff", "these pages are for staff (admins and partners)")
        token = await start_session(
            tenant, SessionRecord(via="webapp", user_id=actor.user_id, user=actor.user)
        )
        tenant.log.info("web_signed_in", via="webapp", user_id=actor.user_id)
        return Response(
            SignedIn(next=_safe_next(tenant, data.next)),
            cookies=[_session_cookie(tenant, request, token)],
        )

    @post("/signout", status_code=303)
    async def signout(self, tenant: TenantDep, request: Request[Any, Any, Any]) -> Redirect:
        """End the session and go back to the sign-in page."""
        await end_session(tenant, request.cookies.get(SESSION_COOKIE))
        response = Redirect(f"{web_base(tenant)}/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=web_base(tenant) + "/")
        return response
