"""Actors in the bot: the HasRole filter on its own, the core's polite refusal of role commands, /help per role."""

from __future__ import annotations

from typing import Any

import pytest

from core import Grant, HasRole, Role, hookimpl

STAFF = 4101
MANAGER = 4102
STRANGER = 4199
ADMIN = 900000001  # the harness's default bot.admins

SEEN: list[tuple[str, int, frozenset[str], str]] = []
"""(command, user id, the actor's roles, how it reached the handler) of each handled command."""


class ShiftsLike:
    """A plugin with staff and managers: ``/report`` for both, ``/payroll`` for managers only."""

    members = {STAFF: "staff", MANAGER: "manager"}

    @hookimpl
    def register_roles(self) -> list[Role]:
        return [Role("staff", "an employee"), Role("manager", "approves shifts")]

    @hookimpl
    def grant_roles(self, tenant: Any, user_id: int) -> Any:
        async def grants() -> list[Grant]:  # an awaitable answer is awaited by the core
            role = self.members.get(user_id)
            return [Grant(role)] if role else []

        return grants()

    @hookimpl
    def register_texts(self) -> dict[str, dict[str, str]]:
        return {
            "en": {"role.staff": "staff", "role.manager": "managers"},
            "ru": {"role.staff": "сотрудников", "role.manager": "менеджеров"},
        }

    @hookimpl
    def register_commands(self, tenant: Any) -> list[tuple[Any, ...]]:
        return [
            ("report", "Sales report", ("staff", "manager")),
            ("payroll", "Payroll", "manager"),
            ("shifts", "Open shifts"),
        ]

    @hookimpl
    def register_routers(self, tenant: Any) -> Any:
        from aiogram import Router
        from aiogram.filters import Command

        from core import HasRole

        async def handled(message: Any, actor: Any) -> None:
            command = message.text.split()[0][1:]
            SEEN.append((command, message.from_user.id, actor.roles, actor.via))
            await message.answer(f"{command} for {message.from_user.id}")

        router = Router(name=f"rota:{tenant.id}")
        staff = Router(name=f"rota.staff:{tenant.id}")
        staff.message.filter(HasRole("staff", "manager"))
        staff.message.register(handled, Command("report"))
        managers = Router(name=f"rota.managers:{tenant.id}")
        managers.message.filter(HasRole("manager"))
        managers.message.register(handled, Command("payroll"))
        router.include_routers(staff, managers)
        router.message.register(handled, Command("shifts"))
        return router


async def _say(tenantry: Any, updates: Any, bot_api: Any, bot: int, user: int, text: str) -> str:
    before = len(bot_api.calls("sendMessage", bot_id=bot, chat_id=user))
    command, _, args = text.partition(" ")
    response = await tenantry.post_update("crew", updates.command(command, args, user_id=user))
    assert response.status_code == 200, response.text
    sent = bot_api.calls("sendMessage", bot_id=bot, chat_id=user)[before:]
    assert len(sent) == 1, [c.params for c in sent]
    return sent[0].params["text"]


RESOLVED: list[int] = []
"""User ids ``Backroom.grant_roles`` was asked about, one entry per call."""


class Backroom:
    """A plugin whose staff-only handlers only the role filter guards.

    ``/stock`` and the ``restock`` button are declared nowhere with a role
    (no ``register_commands`` entry), so the core's refusal of role commands
    never sees them: whether a non-member reaches the staff handlers is up to
    ``HasRole`` alone. Everyone else falls through to a public router filtered
    with ``~HasRole("staff")``.
    """

    @hookimpl
    def register_roles(self) -> list[Role]:
        return [Role("staff", "an employee")]

    @hookimpl
    def grant_roles(self, tenant: Any, user_id: int) -> list[Grant] | None:
        RESOLVED.append(user_id)
        return [Grant("staff")] if user_id == STAFF else None

    @hookimpl
    def register_routers(self, tenant: Any) -> Any:
        from aiogram import F, Router
        from aiogram.filters import Command

        async def stock(message: Any, actor: Any) -> None:
            SEEN.append(("stock", message.from_user.id, actor.roles, "staff"))
            await message.answer("stock: 12 crates")

        async def restock(callback: Any, actor: Any) -> None:
            SEEN.append(("restock", callback.from_user.id, actor.roles, "staff"))
            await callback.answer("restocked")

        async def not_staff(message: Any, actor: Any) -> None:
            SEEN.append(("stock", message.from_user.id, actor.roles, "everyone"))
            await message.answer("ask a member of staff")

        async def not_staff_press(callback: Any) -> None:
            await callback.answer("staff only", show_alert=True)

        router = Router(name=f"backroom:{tenant.id}")
        staff = Router(name=f"backroom.staff:{tenant.id}")
        staff.message.filter(HasRole("staff"))
        staff.callback_query.filter(HasRole("staff"))
        staff.message.register(stock, Command("stock"))
        staff.callback_query.register(restock, F.data == "restock")
        everyone = Router(name=f"backroom.everyone:{tenant.id}")
        everyone.message.filter(~HasRole("staff"))
        everyone.callback_query.filter(~HasRole("staff"))
        everyone.message.register(not_staff, Command("stock"))
        everyone.callback_query.register(not_staff_press, F.data == "restock")
        router.include_routers(staff, everyone)
        return router


async def _start(tenantry: Any, locale: str = "en", plugin: tuple[str, Any] | None = None) -> int:
    SEEN.clear()
    RESOLVED.clear()
    name, implementation = plugin or ("rota", ShiftsLike())
    config = tenantry.add_tenant("crew", locale=locale, features={name: {}})
    await tenantry.start(plugins=[(name, implementation)])
    await tenantry.wait_state("crew", "running")
    return int(config["bot"]["token"].split(":")[0])


async def test_role_only_commands_are_refused_politely_and_work_for_the_role(
    tenantry, updates, bot_api
):
    bot = await _start(tenantry)

    async def say(user: int, text: str) -> str:
        return await _say(tenantry, updates, bot_api, bot, user, text)

    assert await say(STRANGER, "/report") == "This command is for staff, managers."
    assert await say(STAFF, "/payroll 2026-05") == "This command is for managers."
    assert await say(ADMIN, "/report") == "This command is for staff, managers."
    assert SEEN == []  # the handlers never ran for them

    assert await say(STAFF, "/report") == f"report for {STAFF}"
    assert await say(MANAGER, "/report today") == f"report for {MANAGER}"
    assert await say(MANAGER, "/payroll") == f"payroll for {MANAGER}"
    assert await say(STRANGER, "/shifts") == f"shifts for {STRANGER}"
    assert SEEN == [
        ("report", STAFF, frozenset({"staff", "customer"}), "bot"),
        ("report", MANAGER, frozenset({"manager", "customer"}), "bot"),
        ("payroll", MANAGER, frozenset({"manager", "customer"}), "bot"),
        ("shifts", STRANGER, frozenset({"customer"}), "bot"),
    ]


async def test_help_lists_the_commands_of_the_actors_roles(tenantry, updates, bot_api):
    bot = await _start(tenantry)

    async def help_of(user: int) -> list[str]:
        text = await _say(tenantry, updates, bot_api, bot, user, "/help")
        return [line.split(" ")[0] for line in text.splitlines()[1:]]

    assert await help_of(STRANGER) == ["/shifts", "/start", "/help"]
    assert await help_of(STAFF) == ["/report", "/shifts", "/start", "/help"]
    assert await help_of(MANAGER) == ["/report", "/payroll", "/shifts", "/start", "/help"]
    # Admins' command menu: the public commands only, since none here is for admins.
    menus = bot_api.calls("setMyCommands", bot_id=bot)
    assert [[c["command"] for c in call.params["commands"]] for call in menus] == [
        ["shifts", "start", "help"]
    ]


async def test_the_refusal_is_in_the_tenants_language(tenantry, updates, bot_api):
    bot = await _start(tenantry, locale="ru")
    text = await _say(tenantry, updates, bot_api, bot, STRANGER, "/payroll")
    assert text == "Эта команда только для менеджеров."


async def test_the_role_filter_alone_keeps_others_out_of_staff_handlers(tenantry, updates, bot_api):
    bot = await _start(tenantry, plugin=("backroom", Backroom()))

    async def say(user: int, text: str) -> str:
        return await _say(tenantry, updates, bot_api, bot, user, text)

    async def press(user: int) -> dict[str, Any]:
        before = len(bot_api.calls("answerCallbackQuery", bot_id=bot))
        response = await tenantry.post_update(
            "crew", updates.callback_query("restock", user_id=user)
        )
        assert response.status_code == 200, response.text
        answers = bot_api.calls("answerCallbackQuery", bot_id=bot)[before:]
        assert len(answers) == 1, [c.params for c in answers]
        return answers[0].params

    # Not staff: an admin is not staff either. The public router answers them.
    assert await say(STRANGER, "/stock") == "ask a member of staff"
    assert await say(ADMIN, "/stock") == "ask a member of staff"
    assert (await press(STRANGER))["text"] == "staff only"
    assert [(c, u, how) for c, u, _roles, how in SEEN] == [
        ("stock", STRANGER, "everyone"),
        ("stock", ADMIN, "everyone"),
    ]

    SEEN.clear()
    assert await say(STAFF, "/stock") == "stock: 12 crates"
    assert (await press(STAFF))["text"] == "restocked"
    assert SEEN == [
        ("stock", STAFF, frozenset({"staff", "customer"}), "staff"),
        ("restock", STAFF, frozenset({"staff", "customer"}), "staff"),
    ]


async def test_the_actor_is_resolved_once_per_update(tenantry, updates, bot_api):
    """Router filters, the sub-routers' HasRole and the handler share one resolution."""
    bot = await _start(tenantry, plugin=("backroom", Backroom()))
    # The staff router's filter refuses STRANGER, the public one lets them in: two filters.
    assert (
        await _say(tenantry, updates, bot_api, bot, STRANGER, "/stock") == "ask a member of staff"
    )
    assert RESOLVED == [STRANGER]
    assert await _say(tenantry, updates, bot_api, bot, STAFF, "/stock") == "stock: 12 crates"
    assert RESOLVED == [STRANGER, STAFF]


async def test_has_role_needs_a_role_and_an_actor():
    with pytest.raises(ValueError, match="at least one role"):
        HasRole()
    staff = HasRole("staff", "manager")
    assert str(staff) == "HasRole('staff', 'manager')"
    # No actor in handler data (an update without a user, such as a channel post).
    assert await staff(object()) is False
