"""Round trips between a real aiogram Bot and the Bot API stand-in, and the update builders."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.utils.web_app import safe_parse_webapp_init_data

from core.testing.botapi import BotAPIStandIn, UploadedFile
from core.testing.updates import UpdateFactory, webapp_init_data

BOT_ID = 4242
TOKEN = f"{BOT_ID}:AAE-test_secret"
USER_ID = 777


@pytest_asyncio.fixture
async def botapi() -> AsyncIterator[BotAPIStandIn]:
    async with BotAPIStandIn() as stand_in:
        yield stand_in


@pytest_asyncio.fixture
async def bot(botapi: BotAPIStandIn) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(botapi.base_url))
    async with Bot(TOKEN, session=session) as the_bot:
        yield the_bot


@pytest.mark.asyncio
async def test_get_me(bot: Bot, botapi: BotAPIStandIn) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (BOT_ID, True, f"bot{BOT_ID}_bot")
    [call] = botapi.calls("getme")
    assert (call.method, call.bot_id, call.token, call.error_code) == ("getMe", BOT_ID, TOKEN, None)


@pytest.mark.asyncio
async def test_send_message_records_decoded_markup(bot: Bot, botapi: BotAPIStandIn) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Book", callback_data="book:1")]]
    )

    first = await bot.send_message(USER_ID, "123", reply_markup=markup)
    second = await bot.send_message(USER_ID, "again")

    assert second.message_id == first.message_id + 1
    assert first.chat.type == "private" and first.from_user and first.from_user.id == BOT_ID
    assert first.reply_markup.model_dump() == markup.model_dump() and second.reply_markup is None
    [call, _] = await botapi.wait_for("sendMessage", chat_id=USER_ID, count=2)
    assert call.params["chat_id"] == USER_ID
    assert call.params["text"] == "123"  # free text is never JSON-decoded
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Book", "callback_data": "book:1"}]]
    }
    group_message = await bot.send_message(-100500, "hi group")
    assert group_message.chat.type == "supergroup" and group_message.message_id == 1


@pytest.mark.asyncio
async def test_edit_message_text_keeps_chat_and_sets_edit_date(bot: Bot) -> None:
    sent = await bot.send_message(USER_ID, "draft")

    edited = await bot.edit_message_text(text="final", chat_id=USER_ID, message_id=sent.message_id)

    assert isinstance(edited, Message)
    assert (edited.message_id, edited.text, edited.chat.id) == (sent.message_id, "final", USER_ID)
    assert edited.edit_date is not None
    assert await bot.edit_message_text(text="x", inline_message_id="AgAAA") is True


@pytest.mark.asyncio
async def test_set_webhook_then_info(bot: Bot, botapi: BotAPIStandIn) -> None:
    assert (await bot.get_webhook_info()).url == ""

    await bot.set_webhook("https://example.test/tg/webhook", secret_token="s3cret_token-1")
    info = await bot.get_webhook_info()

    assert info.url == "https://example.test/tg/webhook"
    assert info.has_custom_certificate is False and info.pending_update_count == 0
    assert botapi.webhook(BOT_ID)["secret_token"] == "s3cret_token-1"
    with pytest.raises(TelegramBadRequest, match="secret token"):
        await bot.set_webhook("https://example.test/x", secret_token="not allowed!")
    with pytest.raises(TelegramConflictError):
        await bot.get_updates()
    await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


@pytest.mark.asyncio
async def test_message_text_limits_raise_bad_request(bot: Bot, botapi: BotAPIStandIn) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER_ID, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER_ID, "")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message("not-a-chat", "hello")

    assert [call.error_code for call in botapi.calls("sendMessage")] == [400, 400, 400]
    await bot.send_message(USER_ID, "x" * 4096)


@pytest.mark.asyncio
async def test_fail_next_429_raises_retry_after(bot: Bot, botapi: BotAPIStandIn) -> None:
    botapi.fail_next("sendMessage", error_code=429, retry_after=7)

    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER_ID, "hello")

    assert caught.value.retry_after == 7
    assert (await bot.send_message(USER_ID, "hello")).message_id == 1
    assert [call.error_code for call in botapi.calls("sendMessage")] == [429, None]


@pytest.mark.asyncio
async def test_other_methods_return_parseable_results(bot: Bot, botapi: BotAPIStandIn) -> None:
    botapi.set_chat_member(-100500, USER_ID, "kicked")

    location = await bot.send_location(USER_ID, latitude=55.75, longitude=37.62)
    contact = await bot.send_contact(USER_ID, phone_number="79001234567", first_name="Ann")
    document = await bot.send_document(USER_ID, "BQACAgIAAxkB", caption="Terms")
    chat = await bot.get_chat(-100500)
    banned = await bot.get_chat_member(-100500, USER_ID)
    member = await bot.get_chat_member(-100500, USER_ID + 1)
    await bot.set_my_commands([BotCommand(command="start", description="Start")])

    assert (location.location.latitude, contact.contact.first_name) == (55.75, "Ann")
    assert document.document.file_id == "BQACAgIAAxkB" and document.caption == "Terms"
    assert (chat.id, chat.type) == (-100500, "supergroup")
    assert (banned.status, member.status) == ("kicked", "member")
    assert [command.command for command in await bot.get_my_commands()] == ["start"]
    assert await bot.send_chat_action(USER_ID, "typing") is True
    assert await bot.answer_callback_query("123456789", text="Saved") is True
    assert await bot.delete_message(USER_ID, location.message_id) is True
    assert botapi.calls("answerCallbackQuery")[0].params["callback_query_id"] == "123456789"


@pytest.mark.asyncio
async def test_unavailable_server(bot: Bot, botapi: BotAPIStandIn) -> None:
    botapi.set_unavailable(True)
    with pytest.raises(TelegramNetworkError):
        await bot.get_me()
    botapi.set_unavailable(True, how="bad_gateway")
    with pytest.raises(TelegramServerError):
        await bot.get_me()

    botapi.set_unavailable(False)
    assert (await bot.get_me()).id == BOT_ID


@pytest.mark.asyncio
async def test_get_updates_long_polling_and_offset(bot: Bot, botapi: BotAPIStandIn) -> None:
    factory = UpdateFactory(bot_id=BOT_ID)
    first = botapi.enqueue_update(BOT_ID, factory.message("one", user_id=USER_ID))

    [update] = await bot.get_updates(timeout=1)
    assert update.update_id == first["update_id"] and update.message.text == "one"

    async def enqueue_later() -> None:
        await asyncio.sleep(0.2)
        botapi.enqueue_update(BOT_ID, factory.command("start", "ref42", user_id=USER_ID))

    enqueuing = asyncio.create_task(enqueue_later())
    waited = asyncio.get_running_loop().time()
    updates = await bot.get_updates(offset=first["update_id"] + 1, timeout=5)
    waited = asyncio.get_running_loop().time() - waited
    await enqueuing

    assert [u.message.text for u in updates] == ["/start ref42"]
    assert 0.1 < waited < 4
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == []


@pytest.mark.asyncio
async def test_a_second_get_updates_terminates_the_first_with_409(bot: Bot) -> None:
    """Bot API: one getUpdates consumer per bot; a newer request ends a pending one."""
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    assert await second == []


async def test_dispatcher_answer_is_recorded(bot: Bot, botapi: BotAPIStandIn) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(f"you said {message.text}")

    update = UpdateFactory(bot_id=BOT_ID).message("hi", user_id=USER_ID)
    await dispatcher.feed_update(bot, Update.model_validate(update, context={"bot": bot}))

    [call] = await botapi.wait_for("sendMessage", bot_id=BOT_ID, chat_id=USER_ID)
    assert call.params["text"] == "you said hi"


@pytest.mark.asyncio
async def test_wait_for_timeout_lists_recorded_calls(bot: Bot, botapi: BotAPIStandIn) -> None:
    await bot.get_me()

    with pytest.raises(AssertionError, match=r"(?s)expected 1 sendMessage.*getMe"):
        await botapi.wait_for("sendMessage", timeout=0.1)


@pytest.mark.asyncio
async def test_photo_upload_and_download(bot: Bot, botapi: BotAPIStandIn) -> None:
    photo = BufferedInputFile(b"\x89PNG fake", filename="menu.png")

    message = await bot.send_photo(USER_ID, photo, caption="Menu")

    [call] = botapi.calls("sendPhoto")
    assert isinstance(call.params["photo"], UploadedFile)
    assert call.params["photo"].content == b"\x89PNG fake"
    assert message.caption == "Menu"
    downloaded = await bot.download(message.photo[-1].file_id)
    assert downloaded is not None and downloaded.read() == b"\x89PNG fake"


@pytest.mark.asyncio
async def test_raw_http_token_check_and_case_insensitive_methods(botapi: BotAPIStandIn) -> None:
    async with aiohttp.ClientSession(botapi.base_url) as http:
        async with http.post("/botnot-a-token/getMe") as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }
        async with http.post(f"/bot{TOKEN}/GETME") as response:
            assert (await response.json())["result"]["id"] == BOT_ID
        async with http.post(f"/bot{TOKEN}/someFutureMethod", json={"x": 1}) as response:
            assert await response.json() == {"ok": True, "result": True}
        async with http.get("/_calls", params={"method": "getme"}) as response:
            assert [call["method"] for call in await response.json()] == ["GETME"]
        async with http.delete("/_calls"):
            pass
    assert botapi.calls() == []


def test_update_factory_outputs_parse_as_aiogram_updates() -> None:
    factory = UpdateFactory(bot_id=BOT_ID)
    updates = [
        factory.message("hello", user_id=USER_ID, username="guest", last_name="Doe"),
        factory.message("in group", user_id=USER_ID, chat_id=-1001234),
        factory.command("start", "ref42", user_id=USER_ID),
        factory.contact("79001234567", user_id=USER_ID),
        factory.location(55.75, 37.62, user_id=USER_ID),
        factory.callback_query("book:1", user_id=USER_ID),
        factory.my_chat_member(user_id=USER_ID),
        factory.web_app_data('{"cart": [1, 2]}', "Order", user_id=USER_ID),
    ]

    parsed = [Update.model_validate(json.loads(json.dumps(update))) for update in updates]

    ids = [update.update_id for update in parsed]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert parsed[0].message.from_user.username == "guest"
    assert parsed[1].message.chat.type == "supergroup"
    command = parsed[2].message
    assert command.text == "/start ref42"
    assert command.entities[0].type == "bot_command" and command.entities[0].length == 6
    assert parsed[3].message.contact.user_id == USER_ID
    assert parsed[4].message.location.latitude == 55.75
    query = parsed[5].callback_query
    assert query.data == "book:1" and query.message.from_user.id == BOT_ID
    assert parsed[6].my_chat_member.new_chat_member.status == "kicked"
    assert parsed[7].message.web_app_data.button_text == "Order"


def test_webapp_init_data_validates_with_aiogram() -> None:
    user = {"id": USER_ID, "first_name": "Zoë Ann", "language_code": "en"}

    init_data = webapp_init_data(TOKEN, user, auth_date=1_700_000_000, query_id="AAF")

    parsed = safe_parse_webapp_init_data(TOKEN, init_data)
    assert parsed.user.id == USER_ID and parsed.user.first_name == "Zoë Ann"
    assert parsed.query_id == "AAF" and int(parsed.auth_date.timestamp()) == 1_700_000_000
    with pytest.raises(ValueError):
        safe_parse_webapp_init_data(TOKEN, init_data.replace("auth_date=17", "auth_date=18"))
    with pytest.raises(ValueError):
        safe_parse_webapp_init_data("4242:another_token", init_data)
