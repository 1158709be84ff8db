"""Checkout: validating and pricing a draft from the database, quoting it, creating the order."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from core import Tenant
from core.errors import BadRequest, Conflict
from core.kit.phones import InvalidPhoneNumber, normalize_phone, phone_region
from plugins.orders import repository as repo
from plugins.orders.config import OrdersSettings
from plugins.orders.service.reads import _event_payload, _order_view, settings_of

__all__ = [
    "ORDER_TYPES",
    "OrderDraft",
    "OrderLine",
    "create_order",
    "normalize_customer_phone",
    "quote_order",
]

ORDER_TYPES = ("pickup", "delivery")
MAX_LINES = 50


class OrderLine(msgspec.Struct, frozen=True):
    """One requested item. Any price a client sends next to it is ignored.

    Attributes:
        item_id: the item's id.
        quantity: 1..``max_quantity``.
    """

    item_id: int
    quantity: int = 1


class OrderDraft(msgspec.Struct, frozen=True):
    """What a customer asks for; totals are computed on the server.

    Attributes:
        store_id: the store's id.
        type: ``pickup`` or ``delivery``.
        lines: the items and quantities.
        address: delivery address text (delivery needs it or a location).
        latitude / longitude: delivery location in degrees, both or neither.
        phone: contact phone as typed or shared; stored in E.164
            (:func:`normalize_customer_phone`).
        comment: free text for the store, up to 500 characters.
    """

    store_id: str
    type: str
    lines: list[OrderLine]
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    phone: str = ""
    comment: str = ""


def normalize_customer_phone(tenant: Tenant, phone: str) -> str:
    """A customer's phone in E.164, read in the tenant's region (``core.kit``).

    Raises:
        BadRequest: ``orders.bad_phone``, not a valid phone number.
    """
    try:
        return normalize_phone(phone, phone_region(tenant.config.timezone, tenant.locale))
    except InvalidPhoneNumber as exc:
        raise BadRequest(
            "orders.bad_phone", f"phone {phone!r} is not a phone number: {exc.reason}"
        ) from None


def _with_normal_phone(tenant: Tenant, draft: OrderDraft) -> OrderDraft:
    if not draft.phone:
        return draft
    return msgspec.structs.replace(draft, phone=normalize_customer_phone(tenant, draft.phone))


def _validate(
    settings: OrdersSettings, store: asyncpg.Record | None, draft: OrderDraft
) -> dict[int, int]:
    """Check a draft against its store; return item id -> quantity (duplicates summed).

    Raises:
        BadRequest: the first problem found: ``orders.unknown_store``,
            ``orders.bad_type``, ``orders.type_not_offered``, ``orders.no_items``,
            ``orders.too_many_lines``, ``orders.bad_quantity``,
            ``orders.over_max_quantity``, ``orders.location_pair``,
            ``orders.location_range``, ``orders.address_required``,
            ``orders.text_too_long``, ``orders.bad_text`` (a NUL character),
            ``orders.phone_required``.
    """
    if store is None:
        raise BadRequest("orders.unknown_store", f"unknown store {draft.store_id!r}")
    if draft.type not in ORDER_TYPES:
        raise BadRequest(
            "orders.bad_type",
            f"type must be one of {', '.join(ORDER_TYPES)}, not {draft.type!r}",
        )
    if not store[draft.type]:
        raise BadRequest(
            "orders.type_not_offered",
            f"store {store['id']!r} does not offer {draft.type}",
            order_type=draft.type,
        )
    if not draft.lines:
        raise BadRequest("orders.no_items", "the order has no items")
    if len(draft.lines) > MAX_LINES:
        raise BadRequest(
            "orders.too_many_lines", f"at most {MAX_LINES} lines per order", limit=MAX_LINES
        )
    quantities: dict[int, int] = {}
    for line in draft.lines:
        if line.quantity < 1:
            raise BadRequest(
                "orders.bad_quantity", f"quantity of item {line.item_id} must be at least 1"
            )
        quantities[line.item_id] = quantities.get(line.item_id, 0) + line.quantity
    for item_id, quantity in quantities.items():
        if quantity > settings.max_quantity:
            raise BadRequest(
                "orders.over_max_quantity",
                f"quantity of item {item_id} is over the limit of {settings.max_quantity}",
                limit=settings.max_quantity,
            )
    if (draft.latitude is None) != (draft.longitude is None):
        raise BadRequest("orders.location_pair", "give both latitude and longitude, or neither")
    if draft.latitude is not None and not (
        -90 <= draft.latitude <= 90 and -180 <= draft.longitude <= 180
    ):  # type: ignore[operator]
        raise BadRequest(
            "orders.location_range",
            "latitude must be within -90..90 and longitude within -180..180",
        )
    if draft.type == "delivery" and not draft.address.strip() and draft.latitude is None:
        raise BadRequest("orders.address_required", "delivery orders need an address or a location")
    if len(draft.address) > 500 or len(draft.comment) > 500:
        raise BadRequest(
            "orders.text_too_long", "address and comment are limited to 500 characters"
        )
    if "\x00" in draft.address or "\x00" in draft.comment:
        # PostgreSQL text cannot hold NUL (U+0000).
        raise BadRequest("orders.bad_text", "address and comment may not contain NUL characters")
    if settings.require_phone and not draft.phone:
        raise BadRequest("orders.phone_required", "a phone number is required")
    return quantities


_BIGINT = range(-(2**63), 2**63)
"""Values a bigint column holds: an id outside it names no item."""


async def _price(
    conn: repo.Conn,
    settings: OrdersSettings,
    draft: OrderDraft,
    *,
    cap: tuple[int, int, list[str]] | None = None,
) -> tuple[asyncpg.Record, list[tuple[int, str, int, int]], int, int]:
    """Validate a draft and price it from the database (items share-locked), in one read.

    Args:
        cap: ``(customer_id, limit, excluded statuses)`` to refuse a customer
            who already has ``limit`` active orders (checked first); the
            caller holds the customer's advisory lock.

    Returns:
        ``(store, [(item_id, name, unit_price, quantity)], subtotal, delivery_fee)``.

    Raises:
        Conflict: 409 ``orders.too_many_orders`` (``limit``), over ``cap``.
        BadRequest: bad input (see :func:`_validate`), ``orders.items_unavailable``
            (with ``items``), ``orders.below_minimum`` (with ``minimum``,
            ``subtotal`` and ``currency``; minor units).
    """
    # Read before validating, so one statement serves both: a draft that fails
    # validation only took share locks its rollback releases. Lines past
    # MAX_LINES are refused by _validate, so they are not looked up.
    wanted = sorted({line.item_id for line in draft.lines[:MAX_LINES] if line.item_id in _BIGINT})
    customer_id, limit, excluded = cap if cap is not None else (None, 0, [])
    store, rows, active = await repo.pricing_reads(
        conn, draft.store_id, wanted, customer_id, excluded
    )
    if cap is not None and active >= limit:
        raise Conflict(
            "orders.too_many_orders",
            f"customer {customer_id} already has {active} active orders; at most {limit} at once",
            limit=limit,
        )
    quantities = _validate(settings, store, draft)
    assert store is not None  # _validate raised otherwise
    items = {row["id"]: row for row in rows}
    missing = sorted(set(quantities) - set(items))
    if missing:
        raise BadRequest(
            "orders.items_unavailable",
            f"items not available in store {store['id']!r}: {', '.join(map(str, missing))}",
            items=missing,
        )
    lines = [
        (item_id, items[item_id]["name"], items[item_id]["price"], qty)
        for item_id, qty in quantities.items()
    ]
    subtotal = sum(price * qty for _, _, price, qty in lines)
    if subtotal < store["min_order"]:
        raise BadRequest(
            "orders.below_minimum",
            f"the minimum order of store {store['id']!r} is {store['min_order']} minor units; "
            f"this one is {subtotal}",
            minimum=store["min_order"],
            subtotal=subtotal,
            currency=store["currency"],
        )
    fee = store["delivery_fee"] if draft.type == "delivery" else 0
    return store, lines, subtotal, fee


async def quote_order(tenant: Tenant, draft: OrderDraft) -> dict[str, Any]:
    """Price a draft without writing anything (the bot's summary before confirming).

    Returns:
        ``{"store_name", "currency", "items": [{item_id, name, unit_price,
        quantity, line_total}], "subtotal", "delivery_fee", "total"}`` in minor units.

    Raises:
        BadRequest: as :func:`create_order`.
    """
    draft = _with_normal_phone(tenant, draft)
    async with tenant.db.transaction() as conn:
        store, lines, subtotal, fee = await _price(conn, settings_of(tenant), draft)
    return {
        "store_name": store["name"],
        "currency": store["currency"],
        "items": [
            {"item_id": i, "name": n, "unit_price": p, "quantity": q, "line_total": p * q}
            for i, n, p, q in lines
        ],
        "subtotal": subtotal,
        "delivery_fee": fee,
        "total": subtotal + fee,
    }


def _customer_cap(
    tenant: Tenant, settings: OrdersSettings, customer_id: int
) -> tuple[int, int, list[str]]:
    """The cap of ``customer_id``'s active orders, for :func:`_price` to check.

    Of concurrent creates by one customer at most the cap commit: each
    transaction takes the customer's lock first (``lock=`` of
    ``tenant.db.transaction()``, :func:`repository.customer_orders_lock`) and
    counts the active orders in a later statement (:func:`_price`), whose
    snapshot shows every order committed meanwhile.

    Returns:
        ``(customer_id, max_active_orders_per_customer, statuses that do not count)``.
    """
    machine = tenant.statuses["orders"]
    excluded = [s for s in machine.states if s in settings.cancelled_states or machine.is_final(s)]
    return customer_id, settings.max_active_orders_per_customer, excluded


async def create_order(
    tenant: Tenant, *, customer_id: int, customer_name: str, draft: OrderDraft, source: str
) -> dict[str, Any]:
    """Create an order priced from the current database prices, then publish ``orders.created``.

    Prices, subtotal, delivery fee and total are read and written in one
    transaction, with the items share-locked, so a concurrent price edit
    cannot slip in between; nothing the client sent about money is used.

    Args:
        tenant: the tenant.
        customer_id: Telegram user id of the customer (from the bot update or
            the validated WebApp init data, never from a request body).
        customer_name: shown to partners, up to 200 characters.
        draft: the order.
        source: ``bot``, ``webapp`` or ``api`` (carried in the event).

    Returns:
        The order view (see :func:`order_views`).

    Raises:
        BadRequest: ``orders.bad_phone``; bad input, unknown/unavailable items,
            under the minimum (see :func:`_price`).
        Conflict: 409 ``orders.too_many_orders``, the customer already has
            ``max_active_orders_per_customer`` active orders.
    """
    draft = _with_normal_phone(tenant, draft)
    settings = settings_of(tenant)
    initial = tenant.statuses["orders"].initial
    # Round trips: BEGIN with SET LOCAL search_path and, under the
    # per-customer cap (the default), the customer's advisory lock
    # (tenant.db.transaction()); one read of the active orders, the store and
    # the share-locked items (a later statement than the lock, so it counts
    # what committed while this one waited); one statement writing the order,
    # its lines and its history row (create_order.sql); the outbox row with
    # its NOTIFY (tenant.publish), COMMIT and the session reset in one query
    # (the pool's release sends nothing): 4.
    cap, lock = None, None
    if settings.max_active_orders_per_customer:
        cap = _customer_cap(tenant, settings, customer_id)
        lock = repo.customer_orders_lock(tenant.config.schema, customer_id)
    async with tenant.db.transaction(lock=lock) as conn:
        store, lines, subtotal, fee = await _price(conn, settings, draft, cap=cap)
        role = "admin" if source == "api" else "customer"
        order, order_lines = await repo.create_order(
            conn,
            {
                "store_id": store["id"],
                "customer_id": customer_id,
                "customer_name": customer_name[:200],
                "type": draft.type,
                "status": initial,
                "address": draft.address.strip() if draft.type == "delivery" else "",
                "latitude": draft.latitude if draft.type == "delivery" else None,
                "longitude": draft.longitude if draft.type == "delivery" else None,
                "phone": draft.phone,
                "comment": draft.comment.strip(),
                "subtotal": subtotal,
                "delivery_fee": fee,
                "total": subtotal + fee,
                "currency": store["currency"],
            },
            lines,
            customer_id,
            role,
            "created",
        )
        view = _order_view(order, order_lines)
        await tenant.publish(
            "orders.created",
            _event_payload(view, store["name"], None, "created", role, source),
            conn=conn,
        )
    return view
