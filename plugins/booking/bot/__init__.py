"""The booking bot: ``/book`` flow, ``/mybookings``, ratings, and the admins' commands.

``/book``: date (inline calendar) -> free time -> party size, or service and
staff -> name -> phone (contact button or typed) -> confirm. Each step's
answers live in the tenant's Redis FSM (aiogram ``RedisStorage``), so a
restart mid-flow resumes where the user was. Handlers stay thin: they parse,
call :mod:`plugins.booking.service`, and answer. A refusal is answered with
its text in the tenant's locale (``booking.error.<what>``, ``core.kit.error_text``).

The handlers live in :mod:`.flow` (``/book``), :mod:`.customers`
(``/mybookings``, Cancel, ratings) and :mod:`.admin`; this module wires them
into a new Router per tenant.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter

from core import HasRole, Tenant
from core.http.ratelimit import BOT_WRITE, limit_bot_writes
from plugins.booking import keyboards as kb
from plugins.booking.bot.admin import (
    admin_button_refused,
    block,
    bookings_of_day,
    panel,
    status_pressed,
    today,
)
from plugins.booking.bot.customers import cancel_pressed, my_bookings, rate_pressed
from plugins.booking.bot.flow import (
    BookFlow,
    calendar_pressed,
    confirm_pressed,
    name_given,
    outdated_button,
    party_pressed,
    phone_given,
    retime_pressed,
    service_pressed,
    staff_pressed,
    start_booking,
    time_pressed,
)

__all__ = ["BookFlow", "build_router"]


def _admin_router(tenant: Tenant) -> Router:
    """The admins' commands and status buttons, behind the core's role filter."""
    admin = Router(name=f"booking.admin:{tenant.id}")
    admin.message.filter(HasRole("admin"))
    admin.callback_query.filter(HasRole("admin"))
    admin.message.register(today, Command("today"))
    admin.message.register(bookings_of_day, Command("bookings"))
    admin.message.register(block, Command("block"), flags=BOT_WRITE)
    admin.message.register(panel, Command("panel"))
    admin.callback_query.register(status_pressed, kb.StatusAction.filter(), flags=BOT_WRITE)
    return admin


def build_router(tenant: Tenant) -> Router:
    """A new Router with every booking handler for ``tenant`` (never shared between tenants).

    Admins' handlers sit on a sub-router filtered with :class:`core.HasRole`,
    tried first; the commands ``/today``, ``/bookings`` and ``/block`` from
    anyone else are refused by the core (they are declared for ``admin`` in
    ``register_commands``).
    """
    router = Router(name=f"booking:{tenant.id}")
    customers = Router(name=f"booking.customers:{tenant.id}")
    router.include_routers(_admin_router(tenant), customers)
    customers.message.register(start_booking, Command("book"))
    customers.message.register(my_bookings, Command("mybookings"))
    customers.callback_query.register(
        calendar_pressed, kb.CalendarAction.filter(), StateFilter(BookFlow.date, BookFlow.time)
    )
    customers.callback_query.register(time_pressed, kb.PickTime.filter(), BookFlow.time)
    customers.callback_query.register(retime_pressed, kb.PickTime.filter(), BookFlow.retime)
    customers.callback_query.register(party_pressed, kb.PickParty.filter(), BookFlow.choice)
    customers.callback_query.register(service_pressed, kb.PickService.filter(), BookFlow.choice)
    customers.callback_query.register(staff_pressed, kb.PickStaff.filter(), BookFlow.staff)
    # Handlers that write are counted against limits.bot_writes (core.http.ratelimit).
    customers.callback_query.register(
        confirm_pressed, kb.ConfirmFlow.filter(), BookFlow.confirm, flags=BOT_WRITE
    )
    customers.callback_query.register(cancel_pressed, kb.CancelBooking.filter(), flags=BOT_WRITE)
    customers.callback_query.register(rate_pressed, kb.Rate.filter(), flags=BOT_WRITE)
    customers.callback_query.register(admin_button_refused, kb.StatusAction.filter())
    customers.callback_query.register(outdated_button, F.data.regexp(r"^bk[a-z]*:"))
    customers.message.register(name_given, BookFlow.name, F.text)
    customers.message.register(phone_given, BookFlow.phone, F.contact | F.text)
    return limit_bot_writes(router)
