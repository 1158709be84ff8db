"""The web pages the runtime serves: staff panels and customer WebApps, per tenant, offline.

Server-rendered Jinja templates (the core's and each plugin's) plus one small
ES module per page, served from the package with no build step. Staff sign in
with a one-time link from the bot, WebApp init data, or an API key; sessions
live in the tenant's Redis (:mod:`core.web.sessions`). Plugins contribute pages
with ``register_web_pages`` (:class:`core.web.pages.WebPages`). Guide: docs/pages.md.
"""

from core.web.pages import StaffPage, WebPages, js_texts, web_text

__all__ = ["StaffPage", "WebPages", "js_texts", "web_text"]
