"""The bot side: subscribe on ``/start``, ``/stop``, ``/subscribe``, and the admins' ``/broadcast``.

``/broadcast`` -> choose the audience -> send any message (or album) ->
preview with the count -> confirm or cancel; the campaign then runs in the
background and edits one status message with its progress, whose buttons
pause, resume or cancel it. ``/subscribers`` gives counts by state, language
and segment; ``/cancel`` leaves the flow.

Callback data (Bot API: 1-64 bytes): ``bc:a:<n>`` audience choice n of the
list kept in the FSM data, ``bc:go`` / ``bc:no`` confirm or drop the preview,
``bc:p:<id>`` / ``bc:r:<id>`` / ``bc:x:<id>`` pause, resume, cancel campaign
<id>, ``bc:unsub`` the unsubscribe button under campaign messages.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from core import Tenant
from core.errors import ApiError
from core.kit import error_text
from plugins.broadcast import campaigns, subscribers
from plugins.broadcast.audiences import audience_label, count_audience
from plugins.broadcast.roles import Senders
from plugins.broadcast.sending import UNSUBSCRIBE_CALLBACK, unsubscribe_markup

__all__ = ["BroadcastFlow", "build_router"]

ALBUM_TTL_SECONDS = 3600
"""How long the parts of an album wait for the admin's confirmation, seconds."""


class BroadcastFlow(StatesGroup):
    """FSM states of ``/broadcast``: audience, message, confirmation."""

    audience = State()
    message = State()
    confirm = State()


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def _keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=list(rows))


def _campaign_keyboard(tenant: Tenant, campaign_id: int, paused: bool) -> InlineKeyboardMarkup:
    toggle = (
        _button(tenant.text("broadcast.resume_button"), f"bc:r:{campaign_id}")
        if paused
        else _button(tenant.text("broadcast.pause_button"), f"bc:p:{campaign_id}")
    )
    return _keyboard([toggle, _button(tenant.text("broadcast.stop_button"), f"bc:x:{campaign_id}")])


def _album_key(tenant: Tenant, user_id: int, group: str) -> str:
    return tenant.key("broadcast", "album", user_id, group)


# ---------------------------------------------------------------- everyone


async def on_start(message: Message, tenant: Tenant) -> None:
    """``/start``: subscribe, then let the core (and other plugins) answer it."""
    if message.from_user is not None and tenant.settings_for("broadcast").subscribe_on_start:
        await subscribers.subscribe_user(tenant, message.from_user, explicit=False)
    raise SkipHandler


async def on_stop(message: Message, tenant: Tenant) -> None:
    """``/stop``: unsubscribe."""
    assert message.from_user is not None
    left = await subscribers.leave(tenant, message.from_user.id, "stop")
    await message.answer(tenant.text("broadcast.stopped" if left else "broadcast.not_subscribed"))


async def on_subscribe(message: Message, tenant: Tenant) -> None:
    """``/subscribe``: subscribe again, whatever the reason one left."""
    assert message.from_user is not None
    await subscribers.subscribe_user(tenant, message.from_user, explicit=True)
    await message.answer(tenant.text("broadcast.subscribed"))


async def on_unsubscribe_button(query: CallbackQuery, tenant: Tenant) -> None:
    """The button under a campaign message."""
    await subscribers.leave(tenant, query.from_user.id, "button")
    await query.answer(tenant.text("broadcast.unsubscribed_toast"))


# ---------------------------------------------------------------- senders


async def on_broadcast(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """``/broadcast``: offer the audiences with their counts."""
    stats = await subscribers.stats(tenant)
    total = stats["by_status"]["active"]
    choices: list[tuple[dict[str, Any], str, int]] = [
        ({"kind": "all"}, tenant.text("broadcast.audience.all"), total)
    ]
    for language, count in stats["by_language"]:
        if language:
            title = tenant.text("broadcast.audience.language", language=language)
            choices.append(({"kind": "language", "language": language}, title, count))
    for name, title, params, count in stats["segments"]:
        choices.append(({"kind": "segment", "segment": name, "params": params}, title, count))
    await state.set_state(BroadcastFlow.audience)
    await state.set_data({"choices": [audience for audience, _, _ in choices]})
    rows = [
        [_button(f"{title} ({count})", f"bc:a:{index}")]
        for index, (_, title, count) in enumerate(choices)
    ]
    rows.append([_button(tenant.text("broadcast.cancel_button"), "bc:no")])
    await message.answer(
        tenant.text("broadcast.pick_audience", count=total), reply_markup=_keyboard(*rows)
    )


async def on_audience(query: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    """An audience button: keep it and ask for the message."""
    data = await state.get_data()
    choices = data.get("choices") or []
    index = query.data.rsplit(":", 1)[-1] if query.data else ""
    if not (index.isascii() and index.isdigit()) or int(index) >= len(choices):
        await query.answer(tenant.text("broadcast.expired"), show_alert=True)
        return
    audience = choices[int(index)]
    try:
        count = await count_audience(tenant, audience)
    except ApiError as exc:
        await query.answer(error_text(tenant, exc), show_alert=True)
        return
    if count == 0:
        await query.answer(tenant.text("broadcast.no_recipients"), show_alert=True)
        return
    label = await audience_label(tenant, audience)
    await state.update_data(audience=audience, count=count, label=label)
    await state.set_state(BroadcastFlow.message)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(
            tenant.text("broadcast.send_message", audience=label, count=count)
        )


async def on_album_part(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """A part of an album: collect its message id; the first part asks for confirmation.

    Telegram sends each part of an album as its own update, possibly at the
    same time, so the parts are collected in a Redis list (RPUSH is atomic):
    the update that pushed first shows the confirmation.
    """
    assert message.from_user is not None and message.media_group_id is not None
    key = _album_key(tenant, message.from_user.id, message.media_group_id)
    position = await tenant.redis.rpush(key, message.message_id)
    await tenant.redis.expire(key, ALBUM_TTL_SECONDS)
    if position != 1:
        return
    data = await state.get_data()
    await state.update_data(album=message.media_group_id, content=None)
    await state.set_state(BroadcastFlow.confirm)
    await message.answer(
        tenant.text(
            "broadcast.preview_album",
            parts="…",
            audience=data.get("label"),
            count=data.get("count"),
        ),
        reply_markup=_confirm_keyboard(tenant),
    )


def _confirm_keyboard(tenant: Tenant) -> InlineKeyboardMarkup:
    return _keyboard(
        [
            _button(tenant.text("broadcast.confirm"), "bc:go"),
            _button(tenant.text("broadcast.cancel_button"), "bc:no"),
        ]
    )


async def on_message(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """The campaign message: show a copy as recipients will see it, then ask to confirm."""
    content = {"kind": "copy", "from_chat_id": message.chat.id, "message_ids": [message.message_id]}
    data = await state.get_data()
    await state.update_data(content=content, album=None)
    await state.set_state(BroadcastFlow.confirm)
    settings = tenant.settings_for("broadcast")
    markup = (
        unsubscribe_markup(tenant.text("broadcast.unsubscribe_button"))
        if settings.unsubscribe_button
        else None
    )
    await message.bot.copy_message(  # type: ignore[union-attr]
        message.chat.id, message.chat.id, message.message_id, reply_markup=markup
    )
    await message.answer(
        tenant.text("broadcast.preview", audience=data.get("label"), count=data.get("count")),
        reply_markup=_confirm_keyboard(tenant),
    )


async def on_confirm(query: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    """``Send``: create the campaign and post its status message."""
    data = await state.get_data()
    content = data.get("content")
    if data.get("album"):
        key = _album_key(tenant, query.from_user.id, data["album"])
        parts = sorted(int(m) for m in await tenant.redis.lrange(key, 0, -1))
        await tenant.redis.delete(key)
        content = {"kind": "copy", "from_chat_id": query.from_user.id, "message_ids": parts[:10]}
    if not content or not data.get("audience"):
        await state.clear()
        await query.answer(tenant.text("broadcast.expired"), show_alert=True)
        return
    await state.clear()
    await query.answer()
    chat_id = query.message.chat.id if query.message else query.from_user.id
    try:
        campaign = await campaigns.create_campaign(
            tenant,
            audience=data["audience"],
            content=content,
            created_by=query.from_user.id,
            created_via="bot",
            status_chat_id=chat_id,
        )
    except ApiError as exc:
        await query.bot.send_message(chat_id, error_text(tenant, exc))  # type: ignore[union-attr]
        return
    status = await query.bot.send_message(  # type: ignore[union-attr]
        chat_id,
        tenant.text("broadcast.started", count=campaign["total"]),
        reply_markup=_campaign_keyboard(tenant, campaign["id"], paused=False),
    )
    async with tenant.db.acquire() as conn:
        from plugins.broadcast import repository as repo

        await repo.set_status_message(conn, campaign["id"], chat_id, status.message_id)


async def on_drop(query: CallbackQuery, tenant: Tenant, state: FSMContext) -> None:
    """``Cancel`` on the audience list or the preview."""
    await state.clear()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(tenant.text("broadcast.cancelled"))


async def on_cancel(message: Message, tenant: Tenant, state: FSMContext) -> None:
    """``/cancel`` inside the flow."""
    await state.clear()
    await message.answer(tenant.text("broadcast.cancelled"))


async def on_campaign_button(query: CallbackQuery, tenant: Tenant) -> None:
    """Pause, resume or cancel a running campaign from its status message."""
    _, code, raw_id = (query.data or "").split(":", 2)
    if not (raw_id.isascii() and raw_id.isdigit()) or not 1 <= int(raw_id) <= 2**63 - 1:
        await query.answer(tenant.text("broadcast.expired"), show_alert=True)
        return
    action = {"p": "pause", "r": "resume", "x": "cancel"}[code]
    try:
        campaign = await campaigns.change_status(tenant, int(raw_id), action)
    except ApiError as exc:
        await query.answer(error_text(tenant, exc), show_alert=True)
        return
    done = {
        "pause": "broadcast.paused",
        "resume": "broadcast.resumed",
        "cancel": "broadcast.campaign_cancelled",
    }
    await query.answer(tenant.text(done[action]))
    if isinstance(query.message, Message) and campaign["status"] != "cancelled":
        await query.message.edit_reply_markup(
            reply_markup=_campaign_keyboard(
                tenant, campaign["id"], paused=campaign["status"] == "paused"
            )
        )


async def on_subscribers(message: Message, tenant: Tenant) -> None:
    """``/subscribers``: counts by state, language and segment."""
    stats = await subscribers.stats(tenant)
    lines = [tenant.text("broadcast.stats", **stats["by_status"])]
    lines += [
        tenant.text("broadcast.stats_language", language=language or "?", count=count)
        for language, count in stats["by_language"]
    ]
    lines += [
        tenant.text("broadcast.stats_segment", title=title, count=count)
        for _, title, _, count in stats["segments"]
    ]
    await message.answer("\n".join(lines))


def build_router(tenant: Tenant) -> Router:
    """A new broadcast Router for ``tenant`` (public handlers, then the senders' sub-router)."""
    router = Router(name=f"broadcast:{tenant.id}")
    router.message.register(on_start, CommandStart())
    router.message.register(on_stop, Command("stop"))
    router.message.register(on_subscribe, Command("subscribe"))
    router.callback_query.register(on_unsubscribe_button, F.data == UNSUBSCRIBE_CALLBACK)

    senders = Router(name=f"broadcast.senders:{tenant.id}")
    senders.message.filter(Senders())
    senders.callback_query.filter(Senders())
    flow = StateFilter(BroadcastFlow.audience, BroadcastFlow.message, BroadcastFlow.confirm)
    senders.message.register(on_cancel, Command("cancel"), flow)
    senders.message.register(on_broadcast, Command("broadcast"))
    senders.message.register(on_subscribers, Command("subscribers"))
    senders.message.register(
        on_album_part,
        StateFilter(BroadcastFlow.message, BroadcastFlow.confirm),
        F.media_group_id,
    )
    senders.message.register(
        on_message, StateFilter(BroadcastFlow.message), ~F.text.startswith("/")
    )
    senders.callback_query.register(
        on_audience, F.data.startswith("bc:a:"), StateFilter(BroadcastFlow.audience)
    )
    senders.callback_query.register(
        on_confirm, F.data == "bc:go", StateFilter(BroadcastFlow.confirm)
    )
    senders.callback_query.register(on_drop, F.data == "bc:no")
    senders.callback_query.register(on_campaign_button, F.data.regexp(r"^bc:[prx]:\d{1,19}$"))
    router.include_router(senders)
    return router
