"""Order business logic shared by the bot, the HTTP API and the expiry job, one module per aggregate.

* :mod:`.checkout`: drafts, their validation and pricing, quotes, creating an order;
* :mod:`.transitions`: the role an actor acts in, status changes;
* :mod:`.expiry`: moving orders left in the initial state (the ``orders.expire`` job);
* :mod:`.reads`: the tenant's settings, order views, event payloads.

Every status change goes through :func:`change_status`: the order row is locked
(``SELECT ... FOR UPDATE``) and the tenant's machine checks the move inside one
transaction, so of two conflicting changes exactly one commits and the other
sees the new state and gets :class:`core.TransitionError` (HTTP 409). Events
(``orders.created``, ``orders.status_changed``, ``orders.cancelled``) are
published after commit.

Every refusal is one of the core's errors (:mod:`core.errors`) with a stable
code ``orders.<what>``: the API answers it as a problem body, the bot with the
text ``orders.error.<what>`` (``core.kit.error_text``).
"""

from __future__ import annotations

from plugins.orders.service.checkout import (
    ORDER_TYPES,
    OrderDraft,
    OrderLine,
    create_order,
    normalize_customer_phone,
    quote_order,
)
from plugins.orders.service.expiry import expire_pending
from plugins.orders.service.reads import load_order, order_views, settings_of
from plugins.orders.service.transitions import ACTING_ROLES, acting_role, change_status

__all__ = [
    "ACTING_ROLES",
    "ORDER_TYPES",
    "OrderDraft",
    "OrderLine",
    "acting_role",
    "change_status",
    "create_order",
    "expire_pending",
    "load_order",
    "normalize_customer_phone",
    "order_views",
    "quote_order",
    "settings_of",
]
