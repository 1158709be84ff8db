"""The cart and checkout in the bot: ``/cart``, its buttons, and the checkout states up to the placed order."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from core import Tenant
from core.errors import ApiError
from core.kit import error_text
from plugins.orders import cart
from plugins.orders import repository as repo
from plugins.orders.bot.keyboards import _button, _keyboard, _row_id
from plugins.orders.service import (
    OrderDraft,
    OrderLine,
    create_order,
    normalize_customer_phone,
    quote_order,
    settings_of,
)
from plugins.orders.views import money, order_card

__all__ = [
    "Checkout",
    "address_location",
    "address_text",
    "cart_callback",
    "checkout_callback",
    "phone_contact",
    "phone_text",
    "show_cart",
]


class Checkout(StatesGroup):
    """FSM states of checkout: pickup/delivery, address, phone, confirmation."""

    type = State()
    address = State()
    phone = State()
    confirm = State()


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
