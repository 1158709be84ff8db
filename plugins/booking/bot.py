"""The booking bot: ``/book`` flow, ``/mybookings``, ratings, and the admins' commands.

``/book``: date (inline calendar) -> free time -> party size, or service and
staff -> name -> phone (contact button or typed) -> confirm. Each step's
answers live in the tenant's Redis FSM (aiogram ``RedisStorage``), so a
restart mid-flow resumes where the user was. Handlers stay thin: they parse,
call :mod:`plugins.booking.service`, and answer. A refusal is answered with
its text in the tenant's locale (``booking.error.<what>``, ``core.kit.error_text``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from core import HasRole, Tenant, TransitionError
from core.errors import ApiError
from core.http.ratelimit import BOT_WRITE, limit_bot_writes
from core.kit import error_text, format_date, format_datetime
from plugins.booking import keyboards as kb
from plugins.booking import notify, repository, service
from plugins.booking.service import NewBooking, SlotTaken

__all__ = ["BookFlow", "build_router"]


class BookFlow(StatesGroup):
    """Steps of ``/book``; ``retime`` is picking an alternative after "slot taken"."""

    date = State()
    time = State()
    choice = State()
    staff = State()
    name = State()
    phone = State()
    confirm = State()
    retime = State()


def _now() -> datetime:
    return datetime.now(UTC)


def _day(tenant: Tenant, day: date) -> str:
    """A local date as the booking texts show it: ``DD.MM.YYYY``."""
    return format_date(day, tenant.locale, format="dd.MM.yyyy")


def _move_refused(tenant: Tenant, booking_id: int, exc: TransitionError) -> str:
    """``booking.not_allowed`` for a move the machine refused, with the states' labels."""
    reason = tenant.text(
        "booking.move_refused",
        id=booking_id,
        current=notify.status_label(tenant, exc.current),
        target=notify.status_label(tenant, exc.target),
    )
    return tenant.text("booking.not_allowed", detail=reason)


# ---------------------------------------------------------------- /book


async def start_booking(message: Message, state: FSMContext, tenant: Tenant) -> None:
    """``/book``: forget any earlier flow and show this month's calendar."""
    await state.clear()
    await state.set_state(BookFlow.date)
    today = _now().astimezone(tenant.tz)
    markup = kb.calendar_keyboard(
        tenant, service.settings_of(tenant), today.year, today.month, _now()
    )
    await message.answer(tenant.text("booking.pick_date"), reply_markup=markup)


async def _free_starts(tenant: Tenant, day: date) -> list[datetime]:
    """Starts where anything fits: any table (tables) or any service (services)."""
    settings = service.settings_of(tenant)
    if settings.kind == "tables":
        result = await service.availability(tenant, day, party_size=1)
        return [s.starts_at for s in result.slots]
    starts: set[datetime] = set()
    for spec in settings.services:
        result = await service.availability(tenant, day, service=spec.id)
        starts.update(s.starts_at for s in result.slots)
    return sorted(starts)


async def calendar_pressed(
    callback: CallbackQuery, callback_data: kb.CalendarAction, state: FSMContext, tenant: Tenant
) -> None:
    """A calendar button: another month, or a day whose free times are shown."""
    settings = service.settings_of(tenant)
    await callback.answer()
    if callback_data.action == "m":
        try:
            month = datetime.strptime(callback_data.value, "%Y%m")
            markup = kb.calendar_keyboard(tenant, settings, month.year, month.month, _now())
        except (ValueError, OverflowError):
            # Not a month this bot packed (or one at the ends of the calendar,
            # whose neighbour month does not exist): an outdated button.
            await callback.message.answer(tenant.text("booking.outdated"))
            return
        await callback.message.answer(tenant.text("booking.pick_date"), reply_markup=markup)
        return
    if callback_data.action != "d":
        return
    try:
        day = datetime.strptime(callback_data.value, "%Y%m%d").date()
        starts = await _free_starts(tenant, day)
    except (ValueError, ApiError):
        starts, day = [], _now().astimezone(tenant.tz).date()
    if not starts:
        markup = kb.calendar_keyboard(tenant, settings, day.year, day.month, _now())
        await callback.message.answer(
            tenant.text("booking.no_times", date=_day(tenant, day)), reply_markup=markup
        )
        return
    await state.update_data(day=day.isoformat())
    await state.set_state(BookFlow.time)
    await callback.message.answer(
        tenant.text("booking.pick_time", date=_day(tenant, day)),
        reply_markup=kb.times_keyboard(tenant, starts),
    )


async def time_pressed(
    callback: CallbackQuery, callback_data: kb.PickTime, state: FSMContext, tenant: Tenant
) -> None:
    """A time: offer the party sizes (tables) or the services (services) that still fit."""
    settings = service.settings_of(tenant)
    start = kb.from_epoch_minutes(callback_data.at)
    await callback.answer()
    await state.update_data(at=callback_data.at)
    if settings.kind == "tables":
        largest = await service.party_sizes_at(tenant, start)
        if largest:
            await state.set_state(BookFlow.choice)
            await callback.message.answer(
                tenant.text("booking.pick_party"), reply_markup=kb.party_keyboard(largest)
            )
            return
    else:
        fitting = await service.services_at(tenant, start)
        if fitting:
            await state.update_data(free_staff={code: staff for code, staff in fitting})
            await state.set_state(BookFlow.choice)
            prices = {
                code: notify.format_price(tenant, settings.service(code).price)
                for code, _ in fitting
            }
            markup = kb.services_keyboard(tenant, settings, [code for code, _ in fitting], prices)
            await callback.message.answer(tenant.text("booking.pick_service"), reply_markup=markup)
            return
    await _offer_alternatives(callback.message, state, tenant, start, {})


async def party_pressed(
    callback: CallbackQuery, callback_data: kb.PickParty, state: FSMContext, tenant: Tenant
) -> None:
    """A party size: ask for the name."""
    await callback.answer()
    await state.update_data(party_size=callback_data.size)
    await state.set_state(BookFlow.name)
    await callback.message.answer(tenant.text("booking.ask_name"))


async def service_pressed(
    callback: CallbackQuery, callback_data: kb.PickService, state: FSMContext, tenant: Tenant
) -> None:
    """A service: offer the staff free for it at the chosen time."""
    settings = service.settings_of(tenant)
    await callback.answer()
    data = await state.get_data()
    free_staff = data.get("free_staff", {}).get(callback_data.code)
    if settings.service(callback_data.code) is None or not free_staff:
        await callback.message.answer(tenant.text("booking.outdated"))
        return
    await state.update_data(service=callback_data.code)
    await state.set_state(BookFlow.staff)
    markup = kb.staff_keyboard(settings, free_staff, tenant.text("booking.any_staff"))
    await callback.message.answer(tenant.text("booking.pick_staff"), reply_markup=markup)


async def staff_pressed(
    callback: CallbackQuery, callback_data: kb.PickStaff, state: FSMContext, tenant: Tenant
) -> None:
    """A staff member (or anyone): ask for the name."""
    await callback.answer()
    await state.update_data(staff=None if callback_data.code == "*" else callback_data.code)
    await state.set_state(BookFlow.name)
    await callback.message.answer(tenant.text("booking.ask_name"))


async def name_given(message: Message, state: FSMContext, tenant: Tenant) -> None:
    """The name: ask for the phone with a contact button."""
    name = (message.text or "").strip()
    # PostgreSQL text cannot hold NUL: such a name could never be stored.
    if not 1 <= len(name) <= 100 or name.startswith("/") or "\x00" in name:
        await message.answer(tenant.text("booking.bad_name"))
        return
    await state.update_data(name=name)
    await state.set_state(BookFlow.phone)
    await message.answer(
        tenant.text("booking.ask_phone"),
        reply_markup=kb.phone_keyboard(tenant.text("booking.share_phone")),
    )


async def phone_given(message: Message, state: FSMContext, tenant: Tenant) -> None:
    """The phone (shared contact or typed): show the summary with Confirm / Cancel."""
    if message.contact is not None:
        typed = message.contact.phone_number
    else:
        typed = (message.text or "").strip()
    try:
        phone = service.normalize_customer_phone(tenant, typed)
    except ApiError:
        await message.answer(tenant.text("booking.bad_phone"))
        return
    await state.update_data(phone=phone)
    await _show_summary(message, state, tenant)


async def _show_summary(message: Message, state: FSMContext, tenant: Tenant) -> None:
    settings = service.settings_of(tenant)
    data = await state.get_data()
    start = kb.from_epoch_minutes(data["at"])
    if settings.kind == "tables":
        what = tenant.text("booking.what_party", party=data["party_size"])
    else:
        spec = settings.service(data["service"])
        member = settings.staff_member(data["staff"]) if data.get("staff") else None
        what = tenant.text(
            "booking.what_service",
            service=spec.name if spec else data["service"],
            staff=member.name if member else tenant.text("booking.any_staff"),
            price=notify.format_price(tenant, spec.price if spec else 0),
        )
    await state.set_state(BookFlow.confirm)
    await message.answer(
        tenant.text(
            "booking.summary",
            when=format_datetime(start, tenant.locale, tz=tenant.tz, format="dd.MM.yyyy HH:mm"),
            what=what,
            name=data["name"],
            phone=data["phone"],
        ),
        reply_markup=kb.confirm_keyboard(
            tenant.text("booking.confirm"), tenant.text("booking.cancel_flow")
        ),
    )


def _plan_args(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "party_size": data.get("party_size"),
        "service": data.get("service"),
        "staff": data.get("staff"),
        "table": None,
    }


async def confirm_pressed(
    callback: CallbackQuery, callback_data: kb.ConfirmFlow, state: FSMContext, tenant: Tenant
) -> None:
    """Confirm: book it (or offer the next free times if it was just taken); Cancel: stop."""
    await callback.answer()
    if not callback_data.ok:
        await state.clear()
        await callback.message.answer(tenant.text("booking.flow_cancelled"))
        return
    data = await state.get_data()
    user = callback.from_user
    request = NewBooking(
        starts_at=kb.from_epoch_minutes(data["at"]),
        customer_name=data["name"],
        phone=data["phone"],
        party_size=data.get("party_size") or 1,
        service=data.get("service"),
        staff=data.get("staff"),
    )
    try:
        view = await service.create_booking(
            tenant, request, user_id=user.id, source="bot", actor_role="customer"
        )
    except SlotTaken:
        await _offer_alternatives(
            callback.message, state, tenant, request.starts_at, _plan_args(data)
        )
        return
    except ApiError as problem:
        await state.clear()
        await callback.message.answer(
            tenant.text("booking.problem", detail=error_text(tenant, problem))
        )
        return
    await state.clear()
    key = (
        "booking.created_confirmed"
        if view.status == service.settings_of(tenant).confirmed_status
        else "booking.created_pending"
    )
    await callback.message.answer(tenant.text(key, id=view.id, when=notify.when(tenant, view)))


async def _offer_alternatives(
    message: Message, state: FSMContext, tenant: Tenant, start: datetime, plan_args: dict[str, Any]
) -> None:
    """Say the time is taken and show the next free ones (same party or service)."""
    settings = service.settings_of(tenant)
    if not plan_args:
        plan_args = {"party_size": 1, "service": None, "staff": None, "table": None}
        if settings.kind == "services":
            plan_args = {
                "party_size": None,
                "service": settings.services[0].id,
                "staff": None,
                "table": None,
            }
    try:
        alternatives = await service.next_free_times(tenant, start, plan_args)
    except ApiError:
        alternatives = []
    if not alternatives:
        await state.clear()
        await message.answer(tenant.text("booking.slot_taken_none"))
        return
    # Before the party/service is chosen an alternative restarts the choice; after it, only the time changes.
    has_choice = plan_args.get("party_size") and (
        settings.kind == "tables" or plan_args.get("service")
    )
    current = await state.get_state()
    await state.set_state(
        BookFlow.retime if current == BookFlow.confirm.state and has_choice else BookFlow.time
    )
    await message.answer(
        tenant.text("booking.slot_taken"),
        reply_markup=kb.times_keyboard(tenant, alternatives, with_date=True),
    )


async def retime_pressed(
    callback: CallbackQuery, callback_data: kb.PickTime, state: FSMContext, tenant: Tenant
) -> None:
    """An alternative time after "slot taken": show the summary again with it."""
    await callback.answer()
    await state.update_data(at=callback_data.at)
    await _show_summary(callback.message, state, tenant)


async def outdated_button(callback: CallbackQuery, tenant: Tenant) -> None:
    """A flow button pressed outside its step (an old message, a finished flow)."""
    await callback.answer(tenant.text("booking.outdated"), show_alert=True)


# ---------------------------------------------------------------- customers


async def my_bookings(message: Message, tenant: Tenant) -> None:
    """``/mybookings``: upcoming bookings, each with Cancel while the cutoff allows it."""
    settings = service.settings_of(tenant)
    machine = tenant.statuses[service.PLUGIN]
    views = await service.upcoming_for(tenant, message.from_user.id)
    if not views:
        await message.answer(tenant.text("booking.mine_empty"))
        return
    cutoff = _now() + timedelta(minutes=settings.cancellation_cutoff_minutes)
    for view in views:
        text = tenant.text(
            "booking.mine_item",
            id=view.id,
            when=notify.when(tenant, view),
            what=notify.describe(tenant, view),
            status=notify.status_label(tenant, view.status),
        )
        can_cancel = (
            settings.cancelled_status in machine.allowed(view.status, "customer")
            and view.starts_at > cutoff
        )
        markup = (
            kb.cancel_keyboard(view.id, tenant.text("booking.cancel_button", id=view.id))
            if can_cancel
            else None
        )
        await message.answer(text, reply_markup=markup)


async def cancel_pressed(
    callback: CallbackQuery, callback_data: kb.CancelBooking, tenant: Tenant
) -> None:
    """A customer's Cancel: through the tenant's machine and the cutoff."""
    settings = service.settings_of(tenant)
    user_id = callback.from_user.id
    try:
        view, _ = await service.change_status(
            tenant,
            callback_data.booking_id,
            settings.cancelled_status,
            role="customer",
            actor_id=user_id,
            owner_id=user_id,
        )
    except ApiError as problem:
        key = (
            "booking.too_late"
            if problem.code == "booking.cancellation_cutoff"
            else "booking.outdated"
        )
        await callback.answer()
        await callback.message.answer(tenant.text(key, id=callback_data.booking_id))
        return
    except TransitionError as exc:
        await callback.answer()
        await callback.message.answer(_move_refused(tenant, callback_data.booking_id, exc))
        return
    await callback.answer()
    await callback.message.answer(
        tenant.text("booking.cancelled_by_you", id=view.id, when=notify.when(tenant, view))
    )


async def rate_pressed(callback: CallbackQuery, callback_data: kb.Rate, tenant: Tenant) -> None:
    """A 1-5 rating of the customer's own completed booking, stored once."""
    settings = service.settings_of(tenant)
    if not 1 <= callback_data.rating <= 5:
        await callback.answer(tenant.text("booking.outdated"), show_alert=True)
        return
    try:
        view = await service.get_booking(
            tenant, callback_data.booking_id, owner_id=callback.from_user.id
        )
    except ApiError:
        await callback.answer(tenant.text("booking.outdated"), show_alert=True)
        return
    if view.status != settings.completed_status:
        await callback.answer(tenant.text("booking.outdated"), show_alert=True)
        return
    async with tenant.db.acquire() as conn:
        await repository.insert_feedback(conn, view.id, callback.from_user.id, callback_data.rating)
    await callback.answer()
    await callback.message.answer(tenant.text("booking.rated"))


# ---------------------------------------------------------------- admins


async def _admin_list(message: Message, tenant: Tenant, day: date) -> None:
    views = await service.bookings_on(tenant, day)
    if not views:
        await message.answer(tenant.text("booking.admin_none", date=_day(tenant, day)))
        return
    for view in views:
        await message.answer(
            notify.admin_item(tenant, view), reply_markup=notify.admin_keyboard(tenant, view)
        )


async def today(message: Message, tenant: Tenant) -> None:
    """``/today`` (admins): today's bookings, each with its status buttons."""
    await _admin_list(message, tenant, _now().astimezone(tenant.tz).date())


async def bookings_of_day(message: Message, command: CommandObject, tenant: Tenant) -> None:
    """``/bookings YYYY-MM-DD`` (admins): that day's bookings with status buttons."""
    try:
        day = date.fromisoformat((command.args or "").strip())
    except ValueError:
        await message.answer(tenant.text("booking.bookings_usage"))
        return
    await _admin_list(message, tenant, day)


async def block(message: Message, command: CommandObject, tenant: Tenant) -> None:
    """``/block YYYY-MM-DD HH:MM-HH:MM [resource] [reason]`` (admins): block a time."""
    parts = (command.args or "").split()
    try:
        day = date.fromisoformat(parts[0])
        first, last = parts[1].split("-")
        start = datetime.combine(day, time.fromisoformat(first), tzinfo=tenant.tz)
        end = datetime.combine(day, time.fromisoformat(last), tzinfo=tenant.tz)
    except (IndexError, ValueError):
        await message.answer(tenant.text("booking.block_usage"))
        return
    if end <= start:
        end += timedelta(days=1)  # "22:00-02:00" runs past midnight
    resource = parts[2] if len(parts) > 2 and parts[2] != "*" else None
    reason = " ".join(parts[3:])
    try:
        created = await service.create_block(
            tenant, start, end, resource, reason, created_by=f"telegram:{message.from_user.id}"
        )
    except ApiError as problem:
        if problem.code == "booking.conflict":
            ids = ", ".join(f"#{i}" for i in problem.extensions.get("bookings", []))
            await message.answer(tenant.text("booking.block_conflict", ids=ids))
        else:
            await message.answer(
                tenant.text("booking.problem", detail=error_text(tenant, problem))
            )
        return
    await message.answer(
        tenant.text(
            "booking.blocked",
            date=_day(tenant, day),
            range=parts[1],
            target=resource or tenant.text("booking.whole_place"),
            id=created.id,
        )
    )


async def status_pressed(
    callback: CallbackQuery, callback_data: kb.StatusAction, tenant: Tenant
) -> None:
    """An admin's status button: change through the tenant's machine, show the new buttons."""
    try:
        view, _ = await service.change_status(
            tenant,
            callback_data.booking_id,
            callback_data.to,
            role="admin",
            actor_id=callback.from_user.id,
        )
    except TransitionError as exc:
        await callback.answer(_move_refused(tenant, callback_data.booking_id, exc), show_alert=True)
        return
    except ApiError as problem:
        await callback.answer(
            tenant.text("booking.not_allowed", detail=error_text(tenant, problem)),
            show_alert=True,
        )
        return
    await callback.answer(notify.status_label(tenant, view.status))
    await callback.message.answer(
        notify.admin_item(tenant, view), reply_markup=notify.admin_keyboard(tenant, view)
    )


async def panel(message: Message, tenant: Tenant) -> None:
    """``/panel`` (admins, private chat): a one-time link signing them in to the live panel."""
    from aiogram.types import LinkPreviewOptions

    from core.web.links import LINK_SECONDS, signin_link

    if message.chat.type != "private":
        await message.answer(tenant.text("booking.web.panel_private"))
        return
    user = message.from_user
    fields = {"first_name": user.first_name, "last_name": user.last_name, "username": user.username}
    url = await signin_link(
        tenant, user.id, "booking/admin", {k: v for k, v in fields.items() if v}
    )
    await message.answer(
        tenant.text("booking.web.panel_link", url=url, minutes=LINK_SECONDS // 60),
        # A link preview would fetch the page; the link is redeemed only by its button, still.
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


async def admin_button_refused(callback: CallbackQuery, tenant: Tenant) -> None:
    """An admin's status button pressed by someone who is not (a forwarded message): refuse."""
    await callback.answer(tenant.text("booking.admin_only"), show_alert=True)


# ---------------------------------------------------------------- wiring


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
