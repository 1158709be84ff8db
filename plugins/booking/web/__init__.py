"""The booking plugin's web pages: the admins' live panel and the customers' WebApp (docs/pages.md)."""

from __future__ import annotations

from pathlib import Path

from core.web.pages import StaffPage, WebPages

__all__ = ["web_pages"]

HERE = Path(__file__).parent


def web_pages() -> WebPages:
    """The pages, templates and static files ``register_web_pages`` returns."""
    from plugins.booking.web.pages import BookingPages

    return WebPages(
        route_handlers=(BookingPages,),
        templates=HERE / "templates",
        static=HERE / "static",
        staff_pages=(StaffPage("admin", "booking.web.admin_title", ("admin",)),),
    )
