"""Settings of the orders plugin: the ``features.orders`` block of a tenant file."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["CategorySeed", "ItemSeed", "OrdersSettings", "StoreSettings"]

_SLUG = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
_MONEY = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
_CURRENCY = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
# Bounds of the columns the seeds are written to (migrations/0001_init.sql):
# categories.name 1-100 characters, items.name 1-200, position an integer
# (int4), partner ids bigint.
_CATEGORY_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
_ITEM_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_POSITION = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
_TELEGRAM_ID = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class StoreSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One store of the marketplace. The YAML is the source of truth for stores.

    Attributes:
        id: slug used in URLs, callback data and seed references (``bakery``).
        name: shown to customers and partners.
        partners: Telegram user ids that receive the store's orders and may
            take the ``partner`` transitions. Default: none.
        pickup: customers may collect orders in person. Default True.
        delivery: the store delivers. Default False.
        delivery_fee: added to delivery orders, minor currency units. Default 0.
        min_order: smallest item subtotal accepted, minor units. Default 0.
        currency: ISO 4217 code of every price of this store. Default ``RUB``.
        address: pickup address shown to customers. Default empty.
    """

    id: _SLUG
    name: str
    partners: list[_TELEGRAM_ID] = []
    pickup: bool = True
    delivery: bool = False
    delivery_fee: _MONEY = 0
    min_order: _MONEY = 0
    currency: _CURRENCY = "RUB"
    address: str = ""


class CategorySeed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A catalog category created on first start if missing.

    Attributes:
        id: slug, unique within the tenant (``bread``).
        store: the store's id.
        name: shown in the bot menu.
        position: sort order, ascending. Default 0.
    """

    id: _SLUG
    store: _SLUG
    name: _CATEGORY_NAME
    position: _POSITION = 0


class ItemSeed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A catalog item created on first start if missing (then managed through the API).

    Attributes:
        sku: slug, unique within its store; the seed key (``baguette``).
        store: the store's id.
        category: the category's id.
        name: shown to customers.
        price: minor currency units (``15000`` = 150.00 RUB).
        description: optional text. Default empty.
        available: orderable. Default True.
    """

    sku: _SLUG
    store: _SLUG
    category: _SLUG
    name: _ITEM_NAME
    price: _MONEY
    description: str = ""
    available: bool = True


class OrdersSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``features.orders``: stores, seed catalog, expiry and limits.

    Attributes:
        stores: the stores. Default none (the plugin then only serves the API).
        categories: seed categories. Default none.
        items: seed items. Default none.
        expire_after_minutes: orders still in the machine's initial state this
            many minutes after creation are moved to ``expiry_status`` by the
            ``orders.expire`` job (role ``system``). 0 disables it. Default 15.
        expiry_status: target state of expiry. Default ``cancelled``.
        cancelled_states: states whose arrival also publishes
            ``orders.cancelled``. Default ``[cancelled, rejected]``.
        require_phone: orders need a phone number. Default True.
        max_quantity: largest quantity of one item in an order. Default 99.
        max_active_orders_per_customer: most orders one customer may have
            that are not yet in a final state or one of ``cancelled_states``;
            another create is refused (409 ``orders.too_many_orders``).
            0-1000, default 5; 0 for no cap.
        cart_ttl_seconds: an untouched cart is forgotten after this many
            seconds. Default 604800 (7 days).
    """

    stores: list[StoreSettings] = []
    categories: list[CategorySeed] = []
    items: list[ItemSeed] = []
    expire_after_minutes: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)] = 15
    expiry_status: str = "cancelled"
    cancelled_states: list[str] = msgspec.field(default_factory=lambda: ["cancelled", "rejected"])
    require_phone: bool = True
    max_quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 99
    max_active_orders_per_customer: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 5
    cart_ttl_seconds: Annotated[int, msgspec.Meta(ge=60)] = 7 * 86400

    def store(self, store_id: str) -> StoreSettings | None:
        """The store with ``store_id``, or None."""
        return next((s for s in self.stores if s.id == store_id), None)

    def __post_init__(self) -> None:
        """Check cross references (msgspec runs this during conversion).

        Raises:
            ValueError: duplicate store, category or item, or a reference to
                an unknown store or category (reported as a config error).
        """
        store_ids = [s.id for s in self.stores]
        if len(set(store_ids)) != len(store_ids):
            raise ValueError("store ids must be unique")
        category_ids = [c.id for c in self.categories]
        if len(set(category_ids)) != len(category_ids):
            raise ValueError("category ids must be unique")
        for category in self.categories:
            if category.store not in store_ids:
                raise ValueError(f"category {category.id!r} names unknown store {category.store!r}")
        categories = {c.id: c.store for c in self.categories}
        seen: set[tuple[str, str]] = set()
        for item in self.items:
            if categories.get(item.category) != item.store:
                raise ValueError(
                    f"item {item.sku!r}: category {item.category!r} is not a category of store {item.store!r}"
                )
            if (item.store, item.sku) in seen:
                raise ValueError(f"item {item.sku!r} appears twice in store {item.store!r}")
            seen.add((item.store, item.sku))
        for store in self.stores:
            if not (store.pickup or store.delivery):
                raise ValueError(f"store {store.id!r} offers neither pickup nor delivery")
