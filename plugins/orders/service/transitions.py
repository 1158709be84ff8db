"""Status changes: the role an actor acts in on an order, and the locked, machine-checked move."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import Tenant, TransitionError
from core.actors import Actor
from core.errors import Forbidden, NotFound
from plugins.orders import repository as repo
from plugins.orders.service.reads import _event_payload, order_views, settings_of

__all__ = ["ACTING_ROLES", "acting_role", "change_status"]


ACTING_ROLES = ("admin", "system", "partner", "customer")
"""The roles an order is changed in, in the order :func:`acting_role` tries them."""


def acting_role(actor: Actor, order: Mapping[str, Any], as_role: str | None = None) -> str:
    """The role ``actor`` acts in on ``order``: the first of :data:`ACTING_ROLES` it may use.

    ``admin`` and ``system`` act on any order, ``partner`` on orders of the
    stores in its scope (``actor.allows("partner", "store", ...)``),
    ``customer`` on their own orders.

    Args:
        actor: who acts (:class:`core.actors.Actor`).
        order: the order (``store_id``, ``customer_id``).
        as_role: try only this role (a bot button or an admin key naming one).

    Raises:
        Forbidden: ``orders.not_partner``, ``as_role`` is ``partner`` and the
            actor is a partner, but not of this order's store.
        NotFound: ``orders.not_found``, no role applies (someone else's order,
            another store's order for a scoped partner key).
    """
    store_id = order["store_id"]
    for role in (as_role,) if as_role else ACTING_ROLES:
        if role == "partner":
            allowed = actor.allows("partner", "store", store_id)
        elif role == "customer":
            allowed = actor.has_role("customer") and actor.user_id == order["customer_id"]
        else:
            allowed = actor.has_role(role)
        if allowed:
            return role
    if as_role == "partner" and (actor.has_role("partner") or actor.user_id is not None):
        raise Forbidden(
            "orders.not_partner",
            f"user {actor.user_id} is not a partner of store {store_id!r}",
        )
    raise NotFound("orders.not_found", f"no order {order['id']}")


async def change_status(
    tenant: Tenant,
    order_id: int,
    target: str,
    *,
    actor: Actor,
    as_role: str | None = None,
    reason: str = "",
    expected: str | None = None,
) -> dict[str, Any]:
    """Move an order to ``target`` if the tenant's machine lets the actor's role do it.

    Args:
        tenant: the tenant.
        order_id: the order.
        target: the requested state.
        actor: who acts (:class:`core.actors.Actor`; ``SYSTEM_ACTOR`` for
            jobs). The role is chosen by :func:`acting_role` under the
            order's row lock; the history records it with ``actor.user_id``.
        as_role: act only in this role (``customer``, ``partner``, ``admin``).
        reason: free text kept in the history and events (up to 500 chars).
        expected: the state the actor saw; when the order has moved since,
            the change is refused (stale bot buttons, optimistic API clients).

    Returns:
        The updated order view.

    Raises:
        NotFound: ``orders.not_found``, no such order, or one the actor has
            no role on (someone else's, another store's for a scoped key).
        Forbidden: ``orders.not_partner``, acting as partner on another store's order.
        TransitionError: the machine refuses, or the order is no longer in
            ``expected`` (``current`` carries the state now).
    """
    machine = tenant.statuses["orders"]
    reason = reason.strip()[:500]
    actor_id = actor.user_id
    async with tenant.db.transaction() as conn:
        order = await repo.get_order(conn, order_id, for_update=True)
        if order is None:
            raise NotFound("orders.not_found", f"no order {order_id}")
        role = acting_role(actor, order, as_role)
        store = await repo.get_store(conn, order["store_id"])
        current = order["status"]
        fields = {"type": order["type"]}
        if expected is not None and expected != current:
            raise TransitionError(
                current,
                target,
                machine.allowed(current, role, fields),
                f"order {order_id} is {current!r}, not {expected!r}",
            )
        machine.check(current, target, role, fields)
        await repo.set_order_status(conn, order_id, target)
        await repo.insert_history(
            conn, order_id, current, target, actor_id, role, reason, actor.key_name or None
        )
        order = await repo.get_order(conn, order_id)
        [view] = await order_views(conn, [order])
        payload = _event_payload(view, store["name"], current, reason, role, None)
        await tenant.publish("orders.status_changed", payload, conn=conn)
        if target in settings_of(tenant).cancelled_states:
            await tenant.publish("orders.cancelled", payload, conn=conn)
    return view
