"""The always-enabled ``core`` plugin: the users table, ``/start``, ``/help``, blocked users,
the roles every tenant has (``admin``, ``customer``, ``system``) and the refusal of
role-only commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.actors import ADMIN, CUSTOMER, SYSTEM, Actor, Grant, Role
from core.hookspecs import hookimpl

if TYPE_CHECKING:
    # aiogram is imported by register_routers only: the config-phase hooks
    # (and so ``tenantry check``) must not pay for it (about 2 s).
    from aiogram import Router
    from aiogram.types import ChatMemberUpdated, Message

    from core.runtime.tenant import Tenant

TEXTS = {
    "en": {
        "welcome": "Hello! I am the bot of {name}.",
        "help.title": "What I can do:",
        "help.empty": "Send /start to begin.",
        "error.generic": "Sorry, something went wrong. Please try again.",
        "error.rate_limited": "You are doing this too often. Please try again in {seconds} s.",
        "command.help": "list commands",
        "command.start": "start over",
        "error.role_required": "This command is for {roles}.",
        "role.admin": "admins",
        "role.customer": "customers",
        "role.system": "the system",
        "webapp.menu_button": "Open",
    },
    "ru": {
        "welcome": "Здравствуйте! Я бот {name}.",
        "help.title": "Что я умею:",
        "help.empty": "Отправьте /start, чтобы начать.",
        "error.generic": "Извините, что-то пошло не так. Попробуйте ещё раз.",
        "error.rate_limited": "Слишком много действий подряд. Попробуйте снова через {seconds} с.",
        "command.help": "список команд",
        "command.start": "начать сначала",
        "error.role_required": "Эта команда только для {roles}.",
        "role.admin": "администраторов",
        "role.customer": "покупателей",
        "role.system": "системы",
        "webapp.menu_button": "Открыть",
    },
}

UPSERT_USER = """
INSERT INTO users (telegram_id, first_name, last_name, username, language_code)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (telegram_id) DO UPDATE
SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    username = EXCLUDED.username, language_code = EXCLUDED.language_code,
    blocked = false, last_seen_at = now()
"""


@hookimpl
def register_migrations() -> Path:
    """The core's own tables (``users``), applied before any plugin's."""
    return Path(__file__).parent / "migrations_sql"


@hookimpl
def register_texts() -> dict[str, dict[str, str]]:
    """Texts of /start, /help and generic errors in English and Russian."""
    return TEXTS


ROLES = (
    Role(ADMIN, "everything in the tenant: bot.admins, and plain API keys"),
    Role(CUSTOMER, "every user of the tenant's bot and WebApp"),
    Role(SYSTEM, "the runtime itself (jobs)"),
)

_CUSTOMER_GRANTS = (Grant(CUSTOMER),)
_ADMIN_GRANTS = (Grant(ADMIN), Grant(CUSTOMER))


@hookimpl
def register_roles() -> tuple[Role, ...]:
    """``admin``, ``customer`` and ``system``, which every tenant has."""
    return ROLES


@hookimpl
def grant_roles(tenant: Tenant, user_id: int) -> tuple[Grant, ...]:
    """``admin`` (and ``customer``) to ``bot.admins``, ``customer`` to everyone; no I/O."""
    return _ADMIN_GRANTS if user_id in tenant.config.bot.admins else _CUSTOMER_GRANTS


@hookimpl(trylast=True)
def register_commands(tenant: Tenant) -> list[tuple[str, str]]:
    """``/start`` and ``/help``."""
    return [("start", tenant.text("command.start")), ("help", tenant.text("command.help"))]


def _storable(name: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL (U+0000); a name is kept without it.
    return name.replace("\x00", "") if name else name


async def start(message: Message, tenant: Tenant) -> None:
    """``/start``: store the user in ``users`` and answer ``texts.welcome``."""
    user = message.from_user
    if user is not None:
        await tenant.db.execute(
            UPSERT_USER,
            user.id,
            _storable(user.first_name),
            _storable(user.last_name),
            user.username,
            user.language_code,
        )
    await message.answer(tenant.text("welcome", name=tenant.config.name or tenant.id))


async def help_command(message: Message, tenant: Tenant, actor: Actor | None = None) -> None:
    """``/help``: list the commands of the tenant's enabled plugins this actor may use."""
    lines = [f"/{c.command} — {c.description}" for c in tenant.commands_for(actor)]
    if not lines:
        await message.answer(tenant.text("help.empty"))
        return
    await message.answer("\n".join([tenant.text("help.title"), *lines]))


async def chat_member_changed(event: ChatMemberUpdated, tenant: Tenant) -> None:
    """my_chat_member: remember whether the user blocked the bot (broadcasts skip them)."""
    blocked = event.new_chat_member.status == "kicked"
    await tenant.db.execute(
        "UPDATE users SET blocked = $2, last_seen_at = now() WHERE telegram_id = $1",
        event.from_user.id,
        blocked,
    )


def role_labels(tenant: Tenant, roles: tuple[str, ...]) -> str:
    """``admins`` / ``store partners, admins``: the roles in the tenant's words (``role.<name>``)."""
    labels = []
    for role in roles:
        label = tenant.text(f"role.{role}")
        labels.append(role if label == f"role.{role}" else label)
    return ", ".join(labels)


def role_refusal(tenant: Tenant, roles: tuple[str, ...]) -> str:
    """The polite answer to a role-only command from someone without the role (``error.role_required``)."""
    return tenant.text("error.role_required", roles=role_labels(tenant, roles))


@hookimpl(trylast=True)
def register_routers(tenant: Tenant) -> Router:
    """A fresh Router with /start, /help and the my_chat_member handler."""
    from aiogram import F, Router
    from aiogram.filters import Command, CommandStart
    from aiogram.filters.chat_member_updated import KICKED, MEMBER, ChatMemberUpdatedFilter

    router = Router(name=f"core:{tenant.id}")
    router.message.register(start, CommandStart())
    router.message.register(help_command, Command("help"))
    router.my_chat_member.register(
        chat_member_changed,
        ChatMemberUpdatedFilter(member_status_changed=KICKED >> MEMBER),
        F.chat.type == "private",
    )
    router.my_chat_member.register(
        chat_member_changed,
        ChatMemberUpdatedFilter(member_status_changed=MEMBER >> KICKED),
        F.chat.type == "private",
    )
    return router
