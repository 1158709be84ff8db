"""The staff and manager bot flows: /shift, /myshifts, /mymonth, /pending, /report, /staff, /invite.

Role-only handlers sit on sub-routers filtered by the core's ``HasRole``
(``staff``/``manager``/``admin``, granted by :func:`plugins.shifts.access.grants_for`)
and :func:`plugins.shifts.access.with_acting`, which hands them ``acting``
(the employee behind the actor). A role-only command from someone without
the role gets the core's polite refusal (``error.role_required``).

Callback data (Bot API: 1-64 bytes):

* ``sh:close:<shift id>`` close one's open shift (asks for the sales);
* ``sm:<shift id>:<state seen>:<a|r>`` a manager approves or rejects;
* ``sx:<shift id>`` a manager corrects (asks for the sales, then a reason).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from core import Tenant, TransitionError
from core.actors import HasRole
from core.errors import ApiError
from core.http.ratelimit import BOT_WRITE, limit_bot_writes
from core.kit import error_text
from plugins.shifts import repository as repo
from plugins.shifts.access import Acting, with_acting
from plugins.shifts.amounts import parse_amount
from plugins.shifts.service import employees, reports, shifts
from plugins.shifts.views import (
    manager_keyboard,
    money,
    month_text,
    report_text,
    shift_card,
    shift_line,
    state_label,
)

__all__ = ["Closing", "Correcting", "build_router"]

MY_SHIFTS_SHOWN = 5
PENDING_SHOWN = 10


class Closing(StatesGroup):
    """Closing a shift: the sales (one total, or one category after another)."""

    sales = State()


class Correcting(StatesGroup):
    """A manager's correction: new sales, then the reason."""

    sales = State()
    reason = State()


def _row_id(text: str) -> int | None:
    """A positive bigint written in ASCII digits, or None (callback data come from clients)."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= 2**63 - 1 else None


def _close_button(tenant: Tenant, shift_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=tenant.text("shifts.close_button"), callback_data=f"sh:close:{shift_id}"
                )
            ]
        ]
    )


def _refusal(tenant: Tenant, error: ApiError) -> str:
    return error_text(tenant, error)


# ---------------------------------------------------------------- public


async def join(message: Message, tenant: Tenant, command: CommandObject) -> None:
    """``/start inv_<token>``: the invite link binds this Telegram user to an employee."""
    assert message.from_user is not None
    try:
        employee = await employees.join_by_invite(tenant, command.args or "", message.from_user.id)
    except ApiError as exc:
        await message.answer(_refusal(tenant, exc))
        return
    await message.answer(tenant.text("shifts.joined", name=employee["name"]))


# ---------------------------------------------------------------- staff


async def _employee_or_refuse(message: Message, tenant: Tenant, acting: Acting) -> int | None:
    if acting.employee_id is None:
        await message.answer(tenant.text("shifts.not_employee"))
        return None
    return acting.employee_id


async def shift_command(
    message: Message, tenant: Tenant, acting: Acting, state: FSMContext
) -> None:
    """``/shift``: clock in, or (with a shift open) start closing it."""
    employee_id = await _employee_or_refuse(message, tenant, acting)
    if employee_id is None:
        return
    async with tenant.db.acquire() as conn:
        current = await repo.open_shift_of(conn, employee_id)
    if current is not None:
        await _ask_sales(message, tenant, state, current["id"], Closing.sales)
        return
    try:
        shift = await shifts.open_shift(tenant, acting, employee_id)
    except ApiError as exc:
        await message.answer(_refusal(tenant, exc))
        return
    await message.answer(
        tenant.text("shifts.opened", id=shift["id"]) + "\n" + shift_card(tenant, shift),
        reply_markup=_close_button(tenant, shift["id"]),
    )


async def close_button(
    callback: CallbackQuery, tenant: Tenant, acting: Acting, state: FSMContext
) -> None:
    """``sh:close:<id>``: ask for the sales of that shift."""
    shift_id = _row_id((callback.data or "").rpartition(":")[2])
    await callback.answer()
    if shift_id is None or callback.message is None:
        return
    await _ask_sales(callback.message, tenant, state, shift_id, Closing.sales)


async def _ask_sales(
    message: Message, tenant: Tenant, state: FSMContext, shift_id: int, step: State
) -> None:
    """Start collecting sales for ``shift_id``: the first category, or the total."""
    await state.set_state(step)
    await state.update_data(shift_id=shift_id, sales={}, asked=0)
    await _ask_next(message, tenant, 0)


async def _ask_next(message: Message, tenant: Tenant, index: int) -> None:
    categories = tenant.settings_for("shifts").categories
    if categories:
        await message.answer(tenant.text("shifts.ask_category", name=categories[index].name))
    else:
        await message.answer(tenant.text("shifts.ask_sales"))


async def _collect(message: Message, tenant: Tenant, state: FSMContext) -> dict[str, int] | None:
    """Read one typed amount into the FSM data; the complete sales once all are in."""
    settings = tenant.settings_for("shifts")
    amount = parse_amount(message.text or "", settings.currency)
    if amount is None:
        await message.answer(tenant.text("shifts.bad_amount"))
        return None
    data = await state.get_data()
    asked, sales = data.get("asked", 0), dict(data.get("sales") or {})
    if not settings.categories:
        return {"total": amount}
    sales[settings.categories[asked].id] = amount
    if asked + 1 < len(settings.categories):
        await state.update_data(sales=sales, asked=asked + 1)
        await _ask_next(message, tenant, asked + 1)
        return None
    return sales


async def closing_sales(
    message: Message, tenant: Tenant, acting: Acting, state: FSMContext
) -> None:
    """Closing: an amount typed; once all are in, close and show the pay."""
    sales = await _collect(message, tenant, state)
    if sales is None:
        return
    shift_id = (await state.get_data())["shift_id"]
    await state.clear()
    try:
        shift = await shifts.close_shift(tenant, acting, shift_id, sales=sales)
    except TransitionError as exc:
        await message.answer(
            tenant.text("shifts.move_refused", id=shift_id, status=state_label(tenant, exc.current))
        )
        return
    except ApiError as exc:
        await message.answer(_refusal(tenant, exc))
        return
    await message.answer(
        tenant.text("shifts.closed", id=shift_id) + "\n" + shift_card(tenant, shift)
    )


async def my_shifts(message: Message, tenant: Tenant, acting: Acting) -> None:
    """``/myshifts``: the latest shifts with their status."""
    employee_id = await _employee_or_refuse(message, tenant, acting)
    if employee_id is None:
        return
    own = Acting(role="staff", user_id=acting.user_id, employee_id=employee_id)
    recent = await shifts.list_shifts(tenant, own, limit=MY_SHIFTS_SHOWN)
    if not recent:
        await message.answer(tenant.text("shifts.no_shifts"))
        return
    lines = [tenant.text("shifts.my_title"), *(shift_line(tenant, s) for s in recent)]
    await message.answer("\n".join(lines))


async def my_month(message: Message, tenant: Tenant, acting: Acting) -> None:
    """``/mymonth``: the month so far, rank and the distance to the next one."""
    employee_id = await _employee_or_refuse(message, tenant, acting)
    if employee_id is None:
        return
    month = await reports.month_progress(tenant, employee_id, reports.current_month(tenant))
    await message.answer(month_text(tenant, month))


# ---------------------------------------------------------------- managers


async def pending(message: Message, tenant: Tenant, acting: Acting) -> None:
    """``/pending``: shifts waiting for approval, each with Approve / Reject / Correct."""
    settings = tenant.settings_for("shifts")
    waiting = await shifts.list_shifts(
        tenant, acting, statuses=[settings.closed_status], limit=PENDING_SHOWN
    )
    if not waiting:
        await message.answer(tenant.text("shifts.nothing_pending"))
        return
    for shift in waiting:
        await message.answer(
            shift_card(tenant, shift), reply_markup=manager_keyboard(tenant, shift)
        )


async def manager_move(callback: CallbackQuery, tenant: Tenant, acting: Acting) -> None:
    """``sm:<id>:<seen>:<a|r>``: approve or reject through the machine."""
    parts = (callback.data or "").split(":")
    settings = tenant.settings_for("shifts")
    targets = {"a": settings.approved_status, "r": settings.rejected_status}
    if len(parts) != 4 or _row_id(parts[1]) is None or parts[3] not in targets:
        await callback.answer()
        return
    shift_id, seen, target = int(parts[1]), parts[2], targets[parts[3]]
    try:
        shift = await shifts.change_status(tenant, acting, shift_id, target, expected=seen)
    except TransitionError as exc:
        await callback.answer(
            tenant.text(
                "shifts.move_refused", id=shift_id, status=state_label(tenant, exc.current)
            ),
            show_alert=True,
        )
        return
    except ApiError as exc:
        await callback.answer(_refusal(tenant, exc), show_alert=True)
        return
    await callback.answer(
        tenant.text("shifts.moved", id=shift_id, status=state_label(tenant, shift["status"]))
    )
    if callback.message is not None:
        await callback.message.edit_text(shift_card(tenant, shift), reply_markup=None)


async def correct_button(callback: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    """``sx:<id>``: start a correction (new sales, then a reason)."""
    shift_id = _row_id((callback.data or "")[3:])
    await callback.answer()
    if shift_id is None or callback.message is None:
        return
    await callback.message.answer(tenant.text("shifts.correcting", id=shift_id))
    await _ask_sales(callback.message, tenant, state, shift_id, Correcting.sales)


async def correcting_sales(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """Correction: an amount typed; once all are in, ask why."""
    sales = await _collect(message, tenant, state)
    if sales is None:
        return
    await state.update_data(sales=sales)
    await state.set_state(Correcting.reason)
    await message.answer(tenant.text("shifts.ask_reason"))


async def correcting_reason(
    message: Message, tenant: Tenant, acting: Acting, state: FSMContext
) -> None:
    """Correction: the reason; apply it and show the recomputed shift."""
    data = await state.get_data()
    await state.clear()
    try:
        shift = await shifts.correct_shift(
            tenant, acting, data["shift_id"], sales=data["sales"], reason=message.text or ""
        )
    except ApiError as exc:
        await message.answer(_refusal(tenant, exc))
        return
    await message.answer(
        tenant.text("shifts.corrected", id=shift["id"]) + "\n" + shift_card(tenant, shift),
        reply_markup=manager_keyboard(tenant, shift),
    )


async def report(message: Message, tenant: Tenant, acting: Acting, command: CommandObject) -> None:
    """``/report [YYYY-MM]``: totals per employee (this month by default)."""
    try:
        month = (
            reports.parse_month(command.args.strip())
            if command.args
            else reports.current_month(tenant)
        )
    except ApiError as exc:
        await message.answer(_refusal(tenant, exc))
        return
    await message.answer(report_text(tenant, await reports.month_report(tenant, acting, month)))


async def staff_list(message: Message, tenant: Tenant) -> None:
    """``/staff``: employees with role, hourly rate and whether they joined."""
    async with tenant.db.acquire() as conn:
        rows = await repo.list_employees(conn, active_only=True)
    if not rows:
        await message.answer(tenant.text("shifts.no_staff"))
        return
    lines = [tenant.text("shifts.staff_title")]
    for row in rows:
        lines.append(
            tenant.text(
                "shifts.staff_line",
                id=row["id"],
                name=row["name"],
                role=tenant.text(f"shifts.role.{row['role']}"),
                joined=tenant.text("shifts.joined_yes" if row["user_id"] else "shifts.joined_no"),
                rate=money(tenant, row["hourly_rate"]) if row["hourly_rate"] is not None else "—",
            )
        )
    await message.answer("\n".join(lines))


async def invite(message: Message, tenant: Tenant, acting: Acting, command: CommandObject) -> None:
    """``/invite <name> [manager]``: add an employee and send the one-time invite link."""
    words = (command.args or "").split()
    role = "staff"
    if words and words[-1].lower() in ("manager", "staff"):
        role = words.pop().lower()
    if not words:
        await message.answer(tenant.text("shifts.invite_usage"))
        return
    try:
        employee = await employees.create_employee(tenant, acting, name=" ".join(words), role=role)
        link = await employees.create_invite(tenant, acting, employee["id"])
    except ApiError as exc:
        await message.answer(_refusal(tenant, exc))
        return
    await message.answer(
        tenant.text(
            "shifts.invite_created",
            name=employee["name"],
            link=link["link"] or f"/start {link['start']}",
            hours=tenant.settings_for("shifts").invite_ttl_hours,
        )
    )


def build_router(tenant: Tenant) -> Router:
    """A new Router with the public, staff and manager handlers (one per tenant start)."""
    router = Router(name=f"shifts:{tenant.id}")
    router.message.register(
        join, CommandStart(deep_link=True, magic=F.args.startswith(employees.INVITE_PREFIX))
    )

    managers = Router(name=f"shifts.manager:{tenant.id}")
    for observer in (managers.message, managers.callback_query):
        observer.filter(HasRole("manager", "admin"), with_acting)
    managers.message.register(pending, Command("pending"))
    managers.message.register(report, Command("report"))
    managers.message.register(staff_list, Command("staff"))
    managers.message.register(invite, Command("invite"), flags=BOT_WRITE)
    managers.callback_query.register(manager_move, F.data.startswith("sm:"), flags=BOT_WRITE)
    managers.callback_query.register(correct_button, F.data.startswith("sx:"))
    not_command = F.text & ~F.text.startswith("/")
    managers.message.register(correcting_sales, Correcting.sales, not_command)
    managers.message.register(correcting_reason, Correcting.reason, not_command, flags=BOT_WRITE)

    staff = Router(name=f"shifts.staff:{tenant.id}")
    for observer in (staff.message, staff.callback_query):
        observer.filter(HasRole("staff", "manager", "admin"), with_acting)
    staff.message.register(shift_command, Command("shift"), flags=BOT_WRITE)
    staff.message.register(my_shifts, Command("myshifts"))
    staff.message.register(my_month, Command("mymonth"))
    staff.callback_query.register(close_button, F.data.startswith("sh:close:"))
    staff.message.register(closing_sales, Closing.sales, not_command, flags=BOT_WRITE)

    router.include_router(managers)
    router.include_router(staff)
    return limit_bot_writes(router)
