"""Rendering a page: the template, the context every page gets, and cache-busted asset URLs."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar.enums import MediaType
from litestar.response import Template

from core.web.pages import web_text

if TYPE_CHECKING:
    from core.runtime.tenant import Tenant

__all__ = ["STATIC_DIRS", "asset", "page"]

CORE_STATIC = Path(__file__).parent / "static"
STATIC_DIRS: dict[str, Path] = {"core": CORE_STATIC}
"""Owner (``core`` or a plugin name) -> its static folder, served at ``/web/static/<owner>/``.

Filled by :func:`core.web.mount.build_web_routers` from the plugins' ``register_web_pages``."""


@cache
def _version(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def asset(owner: str, name: str) -> str:
    """URL of static file ``name`` of ``owner``, with ``?v=<content hash>`` so caches never serve a stale one."""
    folder = STATIC_DIRS.get(owner)
    version = _version(folder / name) if folder is not None else "0"
    return f"/web/static/{owner}/{name}?v={version}"


def _json_script(value: Any) -> str:
    # Safe inside <script type="application/json">: "</" cannot close the element.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def page(
    tenant: Tenant,
    template: str,
    *,
    title: str = "",
    data: dict[str, Any] | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A page of ``tenant``: ``template`` rendered with the common context.

    Every template gets ``tenant``, ``base`` (``/web/<tenant id>``),
    ``locale``, ``t`` (:func:`core.web.pages.web_text` bound to the tenant),
    ``asset`` (:func:`asset`), ``title`` and ``page_data``: ``data`` as JSON for
    the page's script (read from ``<script id="page-data">``).

    Args:
        tenant: the tenant.
        template: ``<owner>/<name>.html``.
        title: the page title (already translated).
        data: JSON-ready values for the script (texts, settings, URLs).
        status_code: the HTTP status.
        **context: more template variables.
    """
    locale = tenant.locale if tenant.locale in ("ru", "en") else "en"
    return Template(
        template_name=template,
        status_code=status_code,
        media_type=MediaType.HTML,
        context={
            "tenant": tenant,
            "base": f"/web/{tenant.id}",
            "locale": locale,
            "t": lambda key, **fields: web_text(tenant, key, **fields),
            "asset": asset,
            "title": title,
            "page_data": _json_script(data or {}),
            **context,
        },
        headers={"Cache-Control": "no-store"},
    )
