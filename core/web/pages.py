"""What a plugin contributes to the web pages (``register_web_pages``), and the texts they show.

A plugin's pages live next to it (``plugins/<name>/web/``): Litestar route
handlers, a folder of Jinja templates (named ``<plugin>/<page>.html``) and a
folder of static files (one small ES module per page, a stylesheet). The core
mounts them under ``/web/{tenant_id}/<plugin>/`` and ``/web/static/<plugin>/``
(:mod:`core.web.mount`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from core.web.texts import WEB_TEXTS

if TYPE_CHECKING:
    from core.actors import Actor
    from core.runtime.tenant import Tenant
    from core.storage.statuses import StatusMachine

__all__ = ["StaffPage", "WebPages", "js_texts", "machine_for", "staff_roles", "web_text"]


class StaffPage(msgspec.Struct, frozen=True):
    """A staff page listed on the tenant's web index once someone signed in.

    Attributes:
        path: the page under ``/web/{tenant_id}/<plugin>/`` (``admin``, ``partner``).
        title: the text key of its title (``booking.web.admin_title``).
        roles: the roles that may open it (any scope); the page checks scopes itself.
    """

    path: str
    title: str
    roles: tuple[str, ...]


class WebPages(msgspec.Struct, frozen=True):
    """A plugin's web pages (the answer of ``register_web_pages``).

    Attributes:
        route_handlers: Litestar controllers and handlers mounted under
            ``/web/{tenant_id}/<plugin>``; they may ask for ``tenant``
            (:data:`core.http.auth.TenantDep`) and use :mod:`core.web.auth`.
        templates: folder whose files are the templates ``<plugin>/<name>``
            (extend ``core/base.html``).
        static: folder served at ``/web/static/<plugin>/``.
        staff_pages: the pages the web index lists for signed-in staff.
    """

    route_handlers: tuple[Any, ...] = ()
    templates: Path | None = None
    static: Path | None = None
    staff_pages: tuple[StaffPage, ...] = ()


def web_text(tenant: Tenant, key: str, /, **fields: object) -> str:
    """The page text ``key`` in the tenant's locale.

    Looks in the tenant's ``texts:`` block, then the plugins' texts
    (``register_texts``, through :meth:`Tenant.text`), then the core's page
    texts (:data:`core.web.texts.WEB_TEXTS`, ``web.*``) for the locale and
    then English; an unknown key is shown as is.
    """
    if key.startswith("web.") and key not in tenant.config.texts:
        table = WEB_TEXTS.get(tenant.locale) or WEB_TEXTS["en"]
        template = table.get(key) or WEB_TEXTS["en"].get(key, key)
        return template.format(**fields) if fields else template
    return tenant.text(key, **fields)


def js_texts(tenant: Tenant, keys: list[str]) -> dict[str, str]:
    """The texts a page's script needs, by key, in the tenant's locale.

    Texts are left unformatted: the script fills ``{field}`` from a problem
    body's members (``booking.error.slot_taken``) itself.
    """
    return {key: web_text(tenant, key) for key in keys}


def machine_for(machine: StatusMachine, role: str) -> dict[str, list[dict[str, Any]]]:
    """A status machine as a page's script reads it: state -> the moves ``role`` may take.

    Each move is ``{"to": state, "when": {field: value}}``; the script checks
    ``when`` against the entity (``allowedMoves`` in ``ui.js``). The server
    checks every move again.
    """
    return {
        state: [
            {"to": move.to, "when": dict(move.when)}
            for move in moves
            if not move.roles or role in move.roles
        ]
        for state, moves in machine.transitions.items()
    }


def staff_roles(actor: Actor) -> frozenset[str]:
    """The roles of ``actor`` that make it staff: every role but ``customer`` and ``system``."""
    return actor.roles - {"customer", "system"}
