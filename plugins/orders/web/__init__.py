"""The orders plugin's web pages: the partners' live order panel and the customers' WebApp (docs/pages.md)."""

from __future__ import annotations

from pathlib import Path

from core.web.pages import StaffPage, WebPages

__all__ = ["web_pages"]

HERE = Path(__file__).parent


def web_pages() -> WebPages:
    """The pages, templates and static files ``register_web_pages`` returns."""
    from plugins.orders.web.pages import OrderPages

    return WebPages(
        route_handlers=(OrderPages,),
        templates=HERE / "templates",
        static=HERE / "static",
        staff_pages=(StaffPage("partner", "orders.web.partner_title", ("admin", "partner")),),
    )
