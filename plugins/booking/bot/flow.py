"""The ``/book`` flow: its FSM steps (``BookFlow``) and the handler of each step."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from core import Tenant
from core.errors import ApiError
from core.kit import error_text, format_datetime
from plugins.booking import keyboards as kb
from plugins.booking import notify, service
from plugins.booking.bot._common import _day, _now
from plugins.booking.service import NewBooking, SlotTaken

__all__ = [
    "BookFlow",
    "calendar_pressed",
    "confirm_pressed",
    "name_given",
    "outdated_button",
    "party_pressed",
    "phone_given",
    "retime_pressed",
    "service_pressed",
    "staff_pressed",
    "start_booking",
    "time_pressed",
]


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
