"""Who may touch which store in the orders API: the role guards and the store scope of an actor."""

from __future__ import annotations

from core.actors import Actor
from core.errors import Forbidden, NotFound
from core.http.auth import require_role

_staff = require_role("admin", "partner")
"""Catalog edits, order search and item lists: an admin, or a partner within its stores."""

_ordering = require_role("admin", "customer")
"""Creating orders: an admin key (orders taken by staff) or a WebApp customer."""


def _stores_of(actor: Actor) -> frozenset[str] | None:
    """The stores ``actor`` manages: None for all of them (an admin, an unscoped partner)."""
    if actor.has_role("admin"):
        return None
    return actor.scope_of("partner", "store")


def _named_store(actor: Actor, store_id: str) -> None:
    """Refuse a request naming a store the actor does not manage.

    Raises:
        Forbidden: 403 ``orders.store_out_of_scope`` with ``stores`` (those it manages).
    """
    stores = _stores_of(actor)
    if stores is not None and store_id not in stores:
        raise Forbidden(
            "orders.store_out_of_scope",
            f"this key acts for the stores {', '.join(sorted(stores)) or 'none'}, not {store_id!r}",
            stores=sorted(stores),
        )


def _own_store(actor: Actor, store_id: str | None, what: str) -> None:
    """Hide an entity of a store the actor does not manage: 404, as if it did not exist.

    Raises:
        NotFound: ``orders.not_found``.
    """
    stores = _stores_of(actor)
    if store_id is not None and stores is not None and store_id not in stores:
        raise NotFound("orders.not_found", f"no {what}")
