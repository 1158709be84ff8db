"""The catalog in the bot: ``/menu``, stores, categories, items and "add to cart" (``om:...``)."""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from core import Tenant
from plugins.orders import cart
from plugins.orders import repository as repo
from plugins.orders.bot.keyboards import _SLUG, _button, _keyboard, _row_id
from plugins.orders.service import settings_of
from plugins.orders.views import money

__all__ = ["menu", "menu_callback"]


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
