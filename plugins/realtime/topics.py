"""Which topics an event goes to, and which topics an actor may subscribe to.

Topics (docs/plugins/realtime.md): ``bookings`` (booking events), ``orders``
(every store's order events) and ``orders:<store>`` (one store's),
``<plugin>`` for every other plugin's events. The realtime plugin knows the
built-in plugins' event shapes; another plugin's events go to a topic named
after it, for admins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core import Tenant
    from core.actors import Actor
    from core.events.model import DomainEvent

__all__ = ["all_topics", "allowed_topics", "topics_of"]

_OWN = "realtime"


def topics_of(event: DomainEvent) -> list[str]:
    """The topics ``event`` is appended to (empty for the realtime plugin's own events)."""
    plugin = event.name.partition(".")[0]
    if plugin == _OWN:
        return []
    if plugin == "booking":
        return ["bookings"]
    if plugin == "orders":
        store = event.payload.get("store_id")
        return ["orders", f"orders:{store}"] if isinstance(store, str) and store else ["orders"]
    return [plugin]


def _store_ids(tenant: Tenant) -> list[str]:
    if not tenant.enabled("orders"):
        return []
    return [store.id for store in tenant.settings_for("orders").stores]


def all_topics(tenant: Tenant) -> list[str]:
    """Every topic of ``tenant``'s enabled plugins, sorted."""
    topics = [f for f in tenant.features if f not in ("core", _OWN, "booking", "orders")]
    if tenant.enabled("booking"):
        topics.append("bookings")
    stores = _store_ids(tenant)
    if tenant.enabled("orders"):
        topics += ["orders", *(f"orders:{s}" for s in stores)]
    return sorted(topics)


def allowed_topics(tenant: Tenant, actor: Actor) -> list[str]:
    """The topics ``actor`` may subscribe to on ``tenant``, sorted.

    An admin may follow every topic of the tenant's enabled plugins; a
    partner the ``orders:<store>`` topics of the stores in its scope. Anyone
    else gets an empty list.
    """
    if actor.has_role("admin"):
        return all_topics(tenant)
    if actor.has_role("partner"):
        stores = _store_ids(tenant)
        return sorted(f"orders:{s}" for s in stores if actor.allows("partner", "store", s))
    return []
