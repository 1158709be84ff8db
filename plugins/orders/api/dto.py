"""The request and answer Structs of the orders API (msgspec), and the conversion to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from plugins.orders.service import OrderLine

__all__ = [
    "CatalogCategory",
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
    "StatusChangeIn",
]

_SLUG = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_CATEGORY_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
"""categories.name is 1-100 characters (CHECK in migrations/0001_init.sql)."""
_POSITION = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
"""categories.position is a PostgreSQL integer (int4)."""
_MONEY = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


class CategoryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new category: ``id`` slug, its ``store_id``, ``name``, ``position`` (sort order)."""

    id: _SLUG
    store_id: str
    name: _CATEGORY_NAME
    position: _POSITION = 0


class CategoryPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to a category; omitted fields stay."""

    name: _CATEGORY_NAME | None = None
    position: _POSITION | None = None


class ItemIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new item; ``price`` in minor units; the store is the category's."""

    category_id: str
    sku: _SLUG
    name: _NAME
    price: _MONEY
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    available: bool = True


class ItemPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to an item; omitted fields stay. ``price`` in minor units."""

    name: _NAME | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    price: _MONEY | None = None
    available: bool | None = None
    category_id: str | None = None


class OrderIn(msgspec.Struct, frozen=True):
    """A new order. Unknown fields (a client's ``price`` or ``total``) are ignored.

    Attributes:
        store_id: the store.
        type: ``pickup`` or ``delivery``.
        items: ``[{item_id, quantity}]``.
        address / latitude / longitude: delivery destination.
        phone: contact phone.
        comment: note for the store.
        customer_id / customer_name: API-key callers only (orders taken by
            staff); a WebApp caller is always the init data's user.
    """

    store_id: str
    type: str
    items: list[OrderLine]
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    phone: str = ""
    comment: str = ""
    customer_id: int | None = None
    customer_name: str = ""


class StatusChangeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A requested status change.

    Attributes:
        status: the target state.
        reason: kept in the history and sent to the customer.
        expected_status: refuse (409) unless the order is still in this state.
        role: plain (unscoped admin) API keys only: act as ``partner`` (with
            ``actor_id``, a partner of the order's store) instead of ``admin``.
            A scoped key is 400 ``orders.actor_from_key``, a WebApp user 403
            ``orders.role_not_allowed``: they say who acts themselves.
        actor_id: Telegram id recorded as who acted (plain API keys only).
    """

    status: str
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    expected_status: str | None = None
    role: str | None = None
    actor_id: int | None = None


class ItemView(msgspec.Struct):
    """A catalog item; ``price`` in minor units of its store's currency."""

    id: int
    store_id: str
    category_id: str
    sku: str
    name: str
    description: str
    price: int
    available: bool
    updated_at: datetime


class CategoryView(msgspec.Struct):
    """A category of a store; ``position`` sorts ascending."""

    id: str
    store_id: str
    name: str
    position: int


class CatalogCategory(msgspec.Struct):
    """A category in the catalog, with its orderable items."""

    id: str
    name: str
    position: int
    items: list[ItemView]


class CatalogStore(msgspec.Struct):
    """A store in the catalog; money in minor units of ``currency`` (ISO 4217)."""

    id: str
    name: str
    pickup: bool
    delivery: bool
    delivery_fee: int
    min_order: int
    currency: str
    address: str
    categories: list[CatalogCategory]


class OrderLineView(msgspec.Struct):
    """One line of an order, priced when it was created (minor units)."""

    item_id: int
    name: str
    unit_price: int
    quantity: int
    line_total: int


class OrderView(msgspec.Struct):
    """An order as the API returns it.

    Attributes:
        id / store_id / customer_id / customer_name / type / status: as stored.
        address / latitude / longitude: delivery destination (degrees).
        phone: E.164, or empty.
        comment: the customer's note.
        subtotal / delivery_fee / total: minor units of ``currency``.
        created_at / updated_at: UTC.
        items: the lines.
    """

    id: int
    store_id: str
    customer_id: int
    customer_name: str
    type: str
    status: str
    address: str
    latitude: float | None
    longitude: float | None
    phone: str
    comment: str
    subtotal: int
    delivery_fee: int
    total: int
    currency: str
    created_at: datetime
    updated_at: datetime
    items: list[OrderLineView]


class HistoryEntry(msgspec.Struct):
    """One status change.

    ``actor_id`` is None for API keys and the expiry job; ``key_name`` is the
    ``name`` of the API key that made it (``api.keys[].name``), None otherwise.
    """

    from_status: str | None
    to_status: str
    actor_id: int | None
    role: str
    reason: str
    at: datetime
    key_name: str | None = None


def _view(kind: type[Any], value: Any) -> Any:
    # The services build JSON-ready dicts (timestamps as ISO strings); lax
    # conversion parses those back into the Struct's datetimes.
    return msgspec.convert(value, kind, strict=False)
