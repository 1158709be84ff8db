"""HTTP API of the orders plugin, mounted by the core at ``/api/tenants/{tenant_id}/orders``.

* ``X-API-Key`` acting as ``admin`` (a plain key): catalog CRUD, orders by
  store and status, status changes (optionally as a store partner named in
  the body), history.
* ``X-API-Key`` acting as ``partner`` with a ``store`` scope (``{key: ...,
  role: partner, scope: {store: bakery}}``): the same, limited to the stores
  in its scope; orders are not created with it. Another store's order,
  category or item is 404 ``orders.not_found``, as if it did not exist;
  naming another store (``?store=``, a body's ``store_id``) is 403
  ``orders.store_out_of_scope``. The key says who acts, so a body's
  ``role``/``actor_id`` is 400 ``orders.actor_from_key``.
* ``X-Telegram-Init-Data`` (identity from the signed init data only):
  catalog, create, my orders; status changes and reads in the user's role on
  that order: ``admin`` (``bot.admins``), ``partner`` of its store, or its
  ``customer`` (:func:`plugins.orders.service.acting_role`).

Bodies are ``data: <Struct>`` parameters, so Litestar decodes, validates and
documents them; answers are the Structs of :mod:`.dto`. Refusals are the runtime's
problem bodies (``core.errors``) with a code ``orders.<what>``.

* :mod:`.catalog`: :class:`CatalogController`, stores, categories and items;
* :mod:`.orders`: :class:`OrdersController`, orders, status changes, history;
* :mod:`.access`: which stores an actor manages, the role guards;
* :mod:`.dto`: the request and answer Structs.
"""

from __future__ import annotations

from plugins.orders.api.catalog import CatalogController
from plugins.orders.api.dto import (
    CatalogCategory,
    CatalogStore,
    CategoryIn,
    CategoryPatch,
    CategoryView,
    HistoryEntry,
    ItemIn,
    ItemPatch,
    ItemView,
    OrderIn,
    OrderLineView,
    OrderView,
    StatusChangeIn,
)
from plugins.orders.api.orders import OrdersController

__all__ = [
    "CatalogCategory",
    "CatalogController",
    "CatalogStore",
    "CategoryIn",
    "CategoryPatch",
    "CategoryView",
    "HistoryEntry",
    "ItemIn",
    "ItemPatch",
    "ItemView",
    "OrderIn",
    "OrderLineView",
    "OrderView",
    "OrdersController",
    "StatusChangeIn",
]
