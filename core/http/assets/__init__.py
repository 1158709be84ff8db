"""Static files the runtime serves itself: the OpenAPI UI's scripts, styles and icon.

The OpenAPI page must work on a machine without internet access, so Litestar's
Swagger UI plugin is pointed at a vendored copy (``swagger_ui/``, see its
README for source, licence and what is left out) served under
:data:`ASSETS_PATH` instead of the jsDelivr CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ASSETS_PATH", "SWAGGER_UI_VERSION", "openapi_assets_router", "openapi_render_plugins"]

SWAGGER_UI_VERSION = "5.35.0"
"""Version of the vendored npm package ``swagger-ui-dist``."""

ASSETS_PATH = "/schema/assets"
"""URL prefix of the vendored files."""

SWAGGER_UI_DIR = Path(__file__).parent / "swagger_ui"


def openapi_render_plugins() -> list[Any]:
    """Litestar's OpenAPI pages: Swagger UI on the vendored files, and the document as YAML.

    Serves ``/schema`` and ``/schema/swagger`` (Swagger UI), ``/schema/openapi.yaml``;
    Litestar adds ``/schema/openapi.json``. Other UIs Litestar offers (ReDoc,
    Scalar, Elements, RapiDoc) load from a CDN and are left out.
    """
    from litestar.openapi.plugins import SwaggerRenderPlugin, YamlRenderPlugin

    swagger = SwaggerRenderPlugin(
        version=SWAGGER_UI_VERSION,
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )
    return [swagger, YamlRenderPlugin()]


def openapi_assets_router() -> Any:
    """A Litestar router serving ``swagger_ui/`` under :data:`ASSETS_PATH` (not in the schema).

    Responses may be cached for a day: a file changes only with the package.
    """
    from litestar.datastructures import CacheControlHeader
    from litestar.static_files import create_static_files_router

    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[SWAGGER_UI_DIR],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400, public=True),
        name="openapi_assets",
    )
