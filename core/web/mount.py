"""Mounting the web pages: the core's sign-in, each plugin's pages, static files and templates.

Routes (none of them in the OpenAPI document: they serve the pages, not integrators):

* ``/web/static/<owner>/<file>``: the core's and each plugin's static files.
* ``/web/{tenant_id}/``, ``/signin``, ``/signin/link``, ``/signin/webapp``,
  ``/signout``: the core's index and sign-in (:mod:`core.web.signin`).
* ``/web/{tenant_id}/<plugin>/...``: the plugin's ``register_web_pages``
  handlers, 404 for tenants that do not enable it.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pluggy
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape
from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from core.http.auth import feature_guard, provide_actor, provide_tenant, resolve_tenant
from core.runtime.contributions import Contributions, contributions_of
from core.web.render import CORE_STATIC, STATIC_DIRS

__all__ = ["build_web_routers", "plugins_of", "public_url_of", "web_template_config"]

CORE_TEMPLATES = Path(__file__).parent / "templates"

_PUBLIC_URLS: weakref.WeakKeyDictionary[Contributions, str] = weakref.WeakKeyDictionary()


def plugins_of(tenant: Any) -> Contributions:
    """The contributions table ``tenant`` was built with (:attr:`core.runtime.tenant.Tenant.contributions`).

    The web pages read the plugins' pages from it, and the runtime's public
    URL is kept per table.
    """
    return tenant.contributions


def public_url_of(source: pluggy.PluginManager | Contributions) -> str | None:
    """The public base URL of the runtime built on ``source`` (``TENANTRY_PUBLIC_URL``), or None."""
    return _PUBLIC_URLS.get(contributions_of(source))


def _tenant_guard(connection: Any, _: Any) -> None:
    """404 for an unknown tenant, 503 for one that is not serving (as the API mounts)."""
    resolve_tenant(connection)


def build_web_routers(pm: pluggy.PluginManager, public_url: str | None = None) -> list[Router]:
    """The web routers of every plugin that returns pages, plus the core's sign-in and static files.

    Args:
        pm: the plugin manager (its contributions table is read).
        public_url: the runtime's external base URL, which sign-in links sent
            by the bots start with.
    """
    from core.web.signin import SignInController

    if public_url:
        _PUBLIC_URLS[contributions_of(pm)] = public_url.rstrip("/")
    dependencies = {"tenant": Provide(provide_tenant), "actor": Provide(provide_actor)}
    cache = CacheControlHeader(max_age=86400)  # asset URLs carry ?v=<content hash>
    routers: list[Router] = [
        create_static_files_router(
            path="/web/static/core",
            directories=[CORE_STATIC],
            cache_control=cache,
            include_in_schema=False,
            name="web-static-core",
        ),
        Router(
            path="/web/{tenant_id:str}",
            route_handlers=[SignInController],
            guards=[_tenant_guard],
            dependencies=dependencies,
            include_in_schema=False,
        ),
    ]
    for name, pages in contributions_of(pm).web_pages.items():
        if pages.static is not None:
            STATIC_DIRS[name] = pages.static
            routers.append(
                create_static_files_router(
                    path=f"/web/static/{name}",
                    directories=[pages.static],
                    cache_control=cache,
                    include_in_schema=False,
                    name=f"web-static-{name}",
                )
            )
        if pages.route_handlers:
            routers.append(
                Router(
                    path=f"/web/{{tenant_id:str}}/{name}",
                    route_handlers=list(pages.route_handlers),
                    guards=[feature_guard(name)],
                    dependencies=dependencies,
                    include_in_schema=False,
                )
            )
    return routers


def web_template_config(pm: pluggy.PluginManager) -> TemplateConfig[JinjaTemplateEngine]:
    """One Jinja environment: ``core/<file>`` from :data:`CORE_TEMPLATES`, ``<plugin>/<file>`` from each plugin.

    Autoescaping is on for ``.html``; templates are compiled once and cached.
    """
    loaders: dict[str, Any] = {"core": FileSystemLoader(CORE_TEMPLATES)}
    for name, pages in contributions_of(pm).web_pages.items():
        if pages.templates is not None:
            loaders[name] = FileSystemLoader(pages.templates)
    environment = Environment(
        loader=ChoiceLoader([PrefixLoader(loaders, delimiter="/")]),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))
