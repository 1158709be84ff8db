"""The customer and partner bot flows: /menu, /cart, checkout, /myorders and status buttons.

Callback data (Bot API: 1-64 bytes):

* ``om:h`` stores, ``om:s:<store>`` categories, ``om:c:<category>`` items,
  ``om:a:<item id>`` add one to the cart;
* ``oc:inc:<item id>`` / ``oc:dec:<item id>`` / ``oc:clear`` / ``oc:go`` cart;
* ``ck:t:<pickup|delivery>`` / ``ck:ok`` / ``ck:no`` checkout;
* ``os:<order id>:<state seen>:<target>:<c|p|a>`` status change in a role.

Callback data come back from the client, so a press can carry anything: an
id is only ASCII digits of a positive bigint (:func:`_row_id`), a store or
category only a slug; anything else is answered as a button that is gone.
"""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from core import Actor, HasRole, Tenant, TransitionError
from core.errors import ApiError
from core.http.ratelimit import BOT_WRITE, limit_bot_writes
from core.kit import error_text, format_datetime
from plugins.orders import cart
from plugins.orders import repository as repo
from plugins.orders.service import (
    OrderDraft,
    OrderLine,
    change_status,
    create_order,
    load_order,
    normalize_customer_phone,
    order_views,
    quote_order,
    settings_of,
)
from plugins.orders.views import ROLE_CODES, money, order_card, status_keyboard, status_label

__all__ = ["Checkout", "build_router"]

MY_ORDERS_SHOWN = 5

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
"""Store and category ids (``plugins.orders.config`` and the API take only these)."""


def _row_id(text: str) -> int | None:
    """The database id packed in callback data, or None when ``text`` is not one.

    ``items.id`` and ``orders.id`` are positive PostgreSQL bigints. Only ASCII
    digits count: ``str.isdigit`` also accepts digits such as ``²`` that
    ``int`` refuses.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= 2**63 - 1 else None


class Checkout(StatesGroup):
    """FSM states of checkout: pickup/delivery, address, phone, confirmation."""

    type = State()
    address = State()
    phone = State()
    confirm = State()


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def _keyboard(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _refusal(tenant: Tenant, error: ApiError) -> str:
    """A refusal in the tenant's words (``orders.error.<what>``), amounts formatted."""
    extensions = error.extensions
    amounts = {}
    if "currency" in extensions:
        amounts = {
            name: money(tenant, extensions[name], extensions["currency"])
            for name in ("minimum", "subtotal")
            if isinstance(extensions.get(name), int)
        }
    return error_text(tenant, error, **amounts)


def _move_refused(tenant: Tenant, order_id: int, exc: TransitionError) -> str:
    """``orders.refused`` for a move the machine refused, with the states' labels."""
    reason = tenant.text(
        "orders.move_refused",
        id=order_id,
        current=status_label(tenant, exc.current),
        target=status_label(tenant, exc.target),
    )
    return tenant.text("orders.refused", reason=reason)


# ---------------------------------------------------------------- catalog


async def _stores_view(tenant: Tenant) -> tuple[str, InlineKeyboardMarkup | None]:
    async with tenant.db.acquire() as conn:
        stores = await repo.list_stores(conn)
    if not stores:
        return tenant.text("orders.no_stores"), None
    if len(stores) == 1:
        return await _categories_view(tenant, stores[0]["id"], single=True)
    rows = [[_button(s["name"], f"om:s:{s['id']}")] for s in stores]
    return tenant.text("orders.pick_store"), _keyboard(rows)


async def _categories_view(
    tenant: Tenant, store_id: str, single: bool = False
) -> tuple[str, InlineKeyboardMarkup | None]:
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, store_id)
        categories = await repo.list_categories(conn, store_id) if store else []
    if store is None:
        return tenant.text("orders.no_stores"), None
    rows = [[_button(c["name"], f"om:c:{c['id']}")] for c in categories]
    if not single:
        rows.append([_button(tenant.text("orders.back"), "om:h")])
    key = "orders.pick_category" if categories else "orders.no_categories"
    return tenant.text(key, store=store["name"]), _keyboard(rows)


async def _items_view(tenant: Tenant, category_id: str) -> tuple[str, InlineKeyboardMarkup | None]:
    async with tenant.db.acquire() as conn:
        category = await repo.get_category(conn, category_id)
        items = (
            await repo.list_items(conn, category_id=category_id, only_available=True)
            if category
            else []
        )
        store = await repo.get_store(conn, category["store_id"]) if category else None
    if category is None or store is None:
        return tenant.text("orders.item_gone"), None
    rows = [
        [
            _button(
                f"{i['name']} — {money(tenant, i['price'], store['currency'])}", f"om:a:{i['id']}"
            )
        ]
        for i in items
    ]
    rows.append([_button(tenant.text("orders.back"), f"om:s:{category['store_id']}")])
    key = "orders.pick_item" if items else "orders.no_items"
    return tenant.text(key, category=category["name"]), _keyboard(rows)


async def menu(message: Message, tenant: Tenant) -> None:
    """``/menu``: stores (or the only store's categories)."""
    text, keyboard = await _stores_view(tenant)
    await message.answer(text, reply_markup=keyboard)


async def menu_callback(callback: CallbackQuery, tenant: Tenant) -> None:
    """Catalog navigation and "add to cart" buttons (``om:...``)."""
    action, _, argument = (callback.data or "")[3:].partition(":")
    if action == "a":
        await _add_to_cart(callback, tenant, argument)
        return
    if action in ("s", "c") and not _SLUG.fullmatch(argument):
        await callback.answer(tenant.text("orders.item_gone"), show_alert=True)
        return
    if action == "s":
        text, keyboard = await _categories_view(tenant, argument)
    elif action == "c":
        text, keyboard = await _items_view(tenant, argument)
    else:
        text, keyboard = await _stores_view(tenant)
    await callback.answer()
    if callback.message is not None:
        await callback.message.edit_text(text, reply_markup=keyboard)


async def _add_to_cart(callback: CallbackQuery, tenant: Tenant, argument: str) -> None:
    settings = settings_of(tenant)
    async with tenant.db.acquire() as conn:
        item_id = _row_id(argument)
        item = await repo.get_item(conn, item_id) if item_id is not None else None
        store = await repo.get_store(conn, item["store_id"]) if item else None
    if item is None or store is None or not item["available"]:
        await callback.answer(tenant.text("orders.item_gone"), show_alert=True)
        return
    quantity, switched = await cart.add_item(
        tenant, callback.from_user.id, item["store_id"], item["id"], settings.cart_ttl_seconds
    )
    text = tenant.text("orders.added", name=item["name"], quantity=quantity)
    if switched:
        text = tenant.text("orders.cart_switched", store=store["name"]) + "\n" + text
    await callback.answer(text, show_alert=switched)


# ---------------------------------------------------------------- cart


async def _cart_view(tenant: Tenant, user_id: int) -> tuple[str, InlineKeyboardMarkup | None]:
    store_id, quantities = await cart.read(tenant, user_id)
    if not store_id or not quantities:
        return tenant.text("orders.cart_empty"), None
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, store_id)
        items = {
            i["id"]: i for i in await repo.list_items(conn, store_id=store_id, only_available=True)
        }
    lines = [(items[i], q) for i, q in quantities.items() if i in items]
    if store is None or not lines:
        return tenant.text("orders.cart_empty"), None
    currency = store["currency"]
    text = [tenant.text("orders.cart_title", store=store["name"])]
    rows = []
    for item, quantity in lines:
        text.append(
            tenant.text(
                "orders.cart_line",
                name=item["name"],
                quantity=quantity,
                amount=money(tenant, item["price"] * quantity, currency),
            )
        )
        rows.append(
            [
                _button(f"➖ {item['name']}", f"oc:dec:{item['id']}"),
                _button("➕", f"oc:inc:{item['id']}"),
            ]
        )
    subtotal = sum(item["price"] * quantity for item, quantity in lines)
    text.append(tenant.text("orders.cart_total", amount=money(tenant, subtotal, currency)))
    rows.append(
        [
            _button(tenant.text("orders.cart_clear"), "oc:clear"),
            _button(tenant.text("orders.checkout"), "oc:go"),
        ]
    )
    return "\n".join(text), _keyboard(rows)


async def show_cart(message: Message, tenant: Tenant) -> None:
    """``/cart``: lines at current prices with ➖/➕, clear and checkout buttons."""
    if message.from_user is None:
        return
    text, keyboard = await _cart_view(tenant, message.from_user.id)
    await message.answer(text, reply_markup=keyboard)


async def cart_callback(callback: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    """Cart buttons (``oc:...``): change quantities, clear, or start checkout."""
    settings = settings_of(tenant)
    user_id = callback.from_user.id
    action, _, argument = (callback.data or "")[3:].partition(":")
    if action == "go":
        await _start_checkout(callback, tenant, state)
        return
    if action == "clear":
        await cart.clear(tenant, user_id)
        await callback.answer(tenant.text("orders.cart_cleared"))
    elif action in ("inc", "dec") and _row_id(argument) is not None:
        delta = 1 if action == "inc" else -1
        await cart.change_quantity(
            tenant, user_id, int(argument), delta, settings.max_quantity, settings.cart_ttl_seconds
        )
        await callback.answer()
    else:
        await callback.answer()
        return
    text, keyboard = await _cart_view(tenant, user_id)
    if callback.message is not None:
        await callback.message.edit_text(text, reply_markup=keyboard)


# ---------------------------------------------------------------- checkout


async def _start_checkout(callback: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    store_id, quantities = await cart.read(tenant, callback.from_user.id)
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, store_id) if store_id else None
    await callback.answer()
    if store is None or not quantities or callback.message is None:
        await callback.message.answer(tenant.text("orders.cart_empty"))  # type: ignore[union-attr]
        return
    await state.clear()
    await state.update_data(store_id=store["id"])
    if store["pickup"] and store["delivery"]:
        await state.set_state(Checkout.type)
        rows = [
            [
                _button(tenant.text(f"orders.type.{kind}"), f"ck:t:{kind}")
                for kind in ("pickup", "delivery")
            ]
        ]
        await callback.message.answer(tenant.text("orders.pick_type"), reply_markup=_keyboard(rows))
        return
    await _after_type(
        callback.message, tenant, state, "delivery" if store["delivery"] else "pickup"
    )


async def _after_type(message: Message, tenant: Tenant, state: FSMContext, order_type: str) -> None:
    await state.update_data(type=order_type)
    if order_type == "delivery":
        await state.set_state(Checkout.address)
        keyboard = ReplyKeyboardMarkup(
            keyboard=[
                [KeyboardButton(text=tenant.text("orders.share_location"), request_location=True)]
            ],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
        await message.answer(tenant.text("orders.ask_address"), reply_markup=keyboard)
        return
    await _ask_phone(message, tenant, state)


async def _ask_phone(message: Message, tenant: Tenant, state: FSMContext) -> None:
    await state.set_state(Checkout.phone)
    keyboard = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=tenant.text("orders.share_phone"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
    await message.answer(tenant.text("orders.ask_phone"), reply_markup=keyboard)


async def address_text(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """Checkout: the delivery address as text."""
    await state.update_data(
        address=(message.text or "").strip()[:500], latitude=None, longitude=None
    )
    await _ask_phone(message, tenant, state)


async def address_location(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """Checkout: the delivery address as a shared location."""
    location = message.location
    assert location is not None  # the filter F.location guarantees it
    await state.update_data(address="", latitude=location.latitude, longitude=location.longitude)
    await _ask_phone(message, tenant, state)


async def phone_contact(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """Checkout: the phone from the contact button (must be the sender's own contact)."""
    contact = message.contact
    assert contact is not None and message.from_user is not None  # filter F.contact
    if contact.user_id != message.from_user.id:
        await message.answer(tenant.text("orders.foreign_contact"))
        return
    await _summary(message, tenant, state, contact.phone_number)


async def phone_text(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """Checkout: the phone typed as text."""
    try:
        phone = normalize_customer_phone(tenant, message.text or "")
    except ApiError:
        await message.answer(tenant.text("orders.bad_phone"))
        return
    await _summary(message, tenant, state, phone)


async def _draft(tenant: Tenant, user_id: int, data: dict) -> OrderDraft | None:
    store_id, quantities = await cart.read(tenant, user_id)
    if not quantities or store_id != data.get("store_id"):
        return None
    return OrderDraft(
        store_id=store_id,
        type=data.get("type", ""),
        lines=[OrderLine(item_id=i, quantity=q) for i, q in quantities.items()],
        address=data.get("address") or "",
        latitude=data.get("latitude"),
        longitude=data.get("longitude"),
        phone=data.get("phone") or "",
    )


async def _summary(message: Message, tenant: Tenant, state: FSMContext, phone: str) -> None:
    try:
        phone = normalize_customer_phone(tenant, phone)
    except ApiError:
        await message.answer(tenant.text("orders.bad_phone"))
        return
    await state.update_data(phone=phone)
    assert message.from_user is not None
    draft = await _draft(tenant, message.from_user.id, await state.get_data())
    if draft is None:
        await state.clear()
        await message.answer(tenant.text("orders.cart_empty"), reply_markup=ReplyKeyboardRemove())
        return
    try:
        quote = await quote_order(tenant, draft)
    except ApiError as exc:
        await state.clear()
        await message.answer(
            tenant.text("orders.failed", reason=_refusal(tenant, exc)),
            reply_markup=ReplyKeyboardRemove(),
        )
        return
    await state.set_state(Checkout.confirm)
    preview = {
        "id": 0,
        "store_id": draft.store_id,
        "customer_id": message.from_user.id,
        "customer_name": message.from_user.full_name,
        "type": draft.type,
        "status": tenant.statuses["orders"].initial,
        "address": draft.address,
        "latitude": draft.latitude,
        "longitude": draft.longitude,
        "phone": draft.phone,
        **quote,
    }
    details = order_card(tenant, preview, quote["store_name"]).split("\n", 1)[1]
    rows = [
        [
            _button(tenant.text("orders.confirm"), "ck:ok"),
            _button(tenant.text("orders.cancel_checkout"), "ck:no"),
        ]
    ]
    await message.answer(
        tenant.text("orders.summary", details=details), reply_markup=_keyboard(rows)
    )


async def checkout_callback(callback: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    """Checkout buttons (``ck:...``): order type, confirm, cancel."""
    action, _, argument = (callback.data or "")[3:].partition(":")
    message = callback.message
    if message is None:
        await callback.answer()
        return
    current = await state.get_state()
    if action == "t" and current == Checkout.type.state and argument in ("pickup", "delivery"):
        await callback.answer()
        await message.edit_reply_markup(reply_markup=None)
        await _after_type(message, tenant, state, argument)
        return
    if action == "no":
        await state.clear()
        await callback.answer()
        await message.edit_text(tenant.text("orders.checkout_cancelled"))
        return
    if action != "ok" or current != Checkout.confirm.state:
        await callback.answer()
        return
    draft = await _draft(tenant, callback.from_user.id, await state.get_data())
    if draft is None:
        await state.clear()
        await callback.answer()
        await message.edit_text(tenant.text("orders.cart_empty"))
        return
    try:
        order = await create_order(
            tenant,
            customer_id=callback.from_user.id,
            customer_name=callback.from_user.full_name,
            draft=draft,
            source="bot",
        )
    except ApiError as exc:
        await callback.answer()
        await message.edit_text(tenant.text("orders.failed", reason=_refusal(tenant, exc)))
        return
    await state.clear()
    await cart.clear(tenant, callback.from_user.id)
    await callback.answer()
    await message.edit_text(
        tenant.text(
            "orders.placed",
            id=order["id"],
            total=money(tenant, order["total"], order["currency"]),
        )
    )


# ---------------------------------------------------------------- my orders and status buttons


async def my_orders(message: Message, tenant: Tenant) -> None:
    """``/myorders``: the latest orders with their status and the customer's allowed moves."""
    if message.from_user is None:
        return
    async with tenant.db.acquire() as conn:
        rows = await repo.customer_orders(conn, message.from_user.id, MY_ORDERS_SHOWN)
        orders = await order_views(conn, rows)
        stores = {s["id"]: s["name"] for s in await repo.list_stores(conn)}
    if not orders:
        await message.answer(tenant.text("orders.no_orders"))
        return
    text = [tenant.text("orders.my_title")]
    buttons: list[list[InlineKeyboardButton]] = []
    for order in orders:
        when = format_datetime(
            rows[orders.index(order)]["created_at"],
            tenant.locale,
            tz=tenant.tz,
            format="dd.MM HH:mm",
        )
        text.append(
            tenant.text(
                "orders.my_line",
                id=order["id"],
                store=stores.get(order["store_id"], order["store_id"]),
                when=when,
                total=money(tenant, order["total"], order["currency"]),
                status=status_label(tenant, order["status"]),
            )
        )
        keyboard = status_keyboard(tenant, order, "customer")
        if keyboard is not None:
            buttons.extend(keyboard.inline_keyboard)
    await message.answer("\n".join(text), reply_markup=_keyboard(buttons) if buttons else None)


async def status_button(callback: CallbackQuery, tenant: Tenant, actor: Actor) -> None:
    """A status button (``os:<id>:<seen>:<target>:<role>``) pressed by a partner, admin or customer.

    The role in the data is only a claim: the service acts in it only when
    the actor holds it (a partner of the order's store, the order's
    customer, an admin: :func:`plugins.orders.service.acting_role`); the
    machine then checks the move.
    """
    parts = (callback.data or "").split(":")
    if len(parts) != 5 or _row_id(parts[1]) is None or parts[4] not in ROLE_CODES:
        await callback.answer()
        return
    order_id, seen, target, role = int(parts[1]), parts[2] or None, parts[3], ROLE_CODES[parts[4]]
    try:
        order = await change_status(
            tenant, order_id, target, actor=actor, as_role=role, expected=seen
        )
    except TransitionError as exc:
        if seen is not None and exc.current != seen:
            await callback.answer(
                tenant.text("orders.stale", id=order_id, status=status_label(tenant, exc.current)),
                show_alert=True,
            )
            await _refresh(callback, tenant, order_id, role)
        else:
            await callback.answer(_move_refused(tenant, order_id, exc), show_alert=True)
        return
    except ApiError:
        await callback.answer(tenant.text("orders.not_yours"), show_alert=True)
        return
    await callback.answer(
        tenant.text("orders.done", id=order_id, status=status_label(tenant, order["status"]))
    )
    if role == "customer" and callback.message is not None:
        # The customer gets a fresh status message from the event; retire these buttons.
        await callback.message.edit_reply_markup(reply_markup=None)


async def _refresh(callback: CallbackQuery, tenant: Tenant, order_id: int, role: str) -> None:
    """Redraw a stale message with the order's current state and buttons."""
    if callback.message is None:
        return
    order = await load_order(tenant, order_id)
    if role == "customer":
        await callback.message.edit_reply_markup(reply_markup=status_keyboard(tenant, order, role))
        return
    async with tenant.db.acquire() as conn:
        store = await repo.get_store(conn, order["store_id"])
    await callback.message.edit_text(
        order_card(tenant, order, store["name"]), reply_markup=status_keyboard(tenant, order, role)
    )


async def store_panel(message: Message, tenant: Tenant, actor: Actor) -> None:
    """``/storepanel`` (partners, admins; private chat): a one-time link to the live order panel."""
    from aiogram.types import LinkPreviewOptions

    from core.web.links import LINK_SECONDS, signin_link

    if message.chat.type != "private":
        await message.answer(tenant.text("orders.web.panel_private"))
        return
    stores = [
        s
        for s in settings_of(tenant).stores
        if actor.has_role("admin") or actor.allows("partner", "store", s.id)
    ]
    if not stores:
        await message.answer(tenant.text("orders.web.panel_none"))
        return
    user = message.from_user
    fields = {"first_name": user.first_name, "last_name": user.last_name, "username": user.username}
    page = f"orders/partner/{stores[0].id}" if len(stores) == 1 else "orders/partner"
    url = await signin_link(tenant, user.id, page, {k: v for k, v in fields.items() if v})
    name = stores[0].name if len(stores) == 1 else tenant.config.name
    await message.answer(
        tenant.text("orders.web.panel_link", store=name, url=url, minutes=LINK_SECONDS // 60),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


def _staff_router(tenant: Tenant) -> Router:
    """Partners' and admins' status buttons (role code ``p`` or ``a``) and ``/storepanel``."""
    staff = Router(name=f"orders.staff:{tenant.id}")
    staff.message.register(store_panel, Command("storepanel"), HasRole("partner", "admin"))
    staff.callback_query.filter(HasRole("partner", "admin"))
    staff.callback_query.register(
        status_button, F.data.startswith("os:"), F.data.regexp(r":[pa]$"), flags=BOT_WRITE
    )
    return staff


def build_router(tenant: Tenant) -> Router:
    """A new Router with the orders commands, checkout states and buttons (one per tenant start).

    Partners' and admins' buttons sit on a sub-router filtered with
    :class:`core.HasRole`; a store's button pressed by anyone else (a
    forwarded card) reaches the customers' handler, whose service call
    refuses it (``orders.not_yours``).
    """
    parent = Router(name=f"orders:{tenant.id}")
    router = Router(name=f"orders.customers:{tenant.id}")
    parent.include_routers(_staff_router(tenant), router)
    router.message.register(menu, Command("menu"))
    router.message.register(show_cart, Command("cart"))
    router.message.register(my_orders, Command("myorders"))
    router.callback_query.register(menu_callback, F.data.startswith("om:"))
    router.callback_query.register(cart_callback, F.data.startswith("oc:"))
    # Checkout (it places the order) and status buttons write: limits.bot_writes (core.http.ratelimit).
    router.callback_query.register(
        checkout_callback, F.data.startswith("ck:"), flags=BOT_WRITE
    )
    router.callback_query.register(status_button, F.data.startswith("os:"), flags=BOT_WRITE)
    # Commands typed mid-checkout must reach their handlers, not become an address or phone.
    not_command = F.text & ~F.text.startswith("/")
    router.message.register(address_text, Checkout.address, not_command)
    router.message.register(address_location, Checkout.address, F.location)
    router.message.register(phone_contact, Checkout.phone, F.contact)
    router.message.register(phone_text, Checkout.phone, not_command)
    return limit_bot_writes(parent)
