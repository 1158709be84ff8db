"""The customer and partner bot flows: /menu, /cart, checkout, /myorders and status buttons.

* :mod:`.catalog`: ``/menu``, catalog navigation and "add to cart";
* :mod:`.checkout`: ``/cart``, its buttons and the checkout states;
* :mod:`.status`: ``/myorders``, the status buttons of customers, partners and admins,
  and the reason a partner or admin gives for a rejection or cancellation;
* :mod:`.staff`: ``/storepanel`` for partners and admins;
* :mod:`.keyboards`: inline keyboards and the callback data they carry.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command

from core import HasRole, Tenant
from core.http.ratelimit import BOT_WRITE, limit_bot_writes
from plugins.orders.bot.catalog import menu, menu_callback
from plugins.orders.bot.checkout import (
    Checkout,
    address_location,
    address_text,
    cart_callback,
    checkout_callback,
    phone_contact,
    phone_text,
    show_cart,
)
from plugins.orders.bot.staff import store_panel
from plugins.orders.bot.status import (
    StaffReason,
    my_orders,
    reason_cancel,
    reason_skip,
    reason_text,
    status_button,
)

__all__ = ["Checkout", "build_router"]


def _staff_router(tenant: Tenant) -> Router:
    """Partners' and admins' status buttons (role code ``p`` or ``a``), their reasons, ``/storepanel``."""
    staff = Router(name=f"orders.staff:{tenant.id}")
    staff_only = HasRole("partner", "admin")
    staff.message.register(store_panel, Command("storepanel"), staff_only)
    # The reason asked for after a reject or cancel button (plugins.orders.bot.status).
    staff.message.register(reason_cancel, StaffReason.reason, Command("cancel"), staff_only)
    staff.message.register(
        reason_skip, StaffReason.reason, Command("skip"), staff_only, flags=BOT_WRITE
    )
    staff.message.register(
        reason_text, StaffReason.reason, F.text & ~F.text.startswith("/"), staff_only,
        flags=BOT_WRITE,
    )  # fmt: skip
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
    router.callback_query.register(checkout_callback, F.data.startswith("ck:"), flags=BOT_WRITE)
    router.callback_query.register(status_button, F.data.startswith("os:"), flags=BOT_WRITE)
    # Commands typed mid-checkout must reach their handlers, not become an address or phone.
    not_command = F.text & ~F.text.startswith("/")
    router.message.register(address_text, Checkout.address, not_command)
    router.message.register(address_location, Checkout.address, F.location)
    router.message.register(phone_contact, Checkout.phone, F.contact)
    router.message.register(phone_text, Checkout.phone, not_command)
    return limit_bot_writes(parent)
