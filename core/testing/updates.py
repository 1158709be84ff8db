"""Real-shaped Telegram updates for tests.

Every builder returns a JSON-serialisable dict exactly as Telegram posts it to a webhook
(Bot API: Update), so field names are the wire names (``from``, not aiogram's ``from_user``)
and dates are int UTC unix seconds. Feed them to the webhook endpoint, to
``aiogram.types.Update.model_validate`` or to ``BotAPIStandIn.enqueue_update``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import time
from typing import Any, TypedDict, Unpack
from urllib.parse import quote, urlencode

__all__ = [
    "BOT_FIRST_NAME",
    "Sender",
    "UpdateFactory",
    "bot_user",
    "chat_member",
    "webapp_init_data",
]

BOT_FIRST_NAME = "Test Bot"
"""first_name of every bot user built here and returned by the stand-in's getMe."""

DEFAULT_BOT_ID = 1_000_000_001
"""Bot id used when a builder that needs one is given none."""


class Sender(TypedDict, total=False):
    """Optional description of the user who sends a message-based update.

    Attributes:
        chat_id: Chat the message lands in. Defaults to the sender's private chat
            (chat id == user id); negative ids are supergroups.
        first_name: Sender's first name, default "Test".
        last_name: Sender's last name, omitted when None.
        username: Sender's username without "@", omitted when None.
        language_code: IETF language tag of the sender's client, default "en".
    """

    chat_id: int | None
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str | None


def bot_user(bot_id: int) -> dict[str, Any]:
    """Build the Bot API User object of a bot, as it appears in ``from`` of its messages.

    Args:
        bot_id: The bot's id, the digits before ":" in its token.

    Returns:
        A User dict with ``is_bot`` true and username ``f"bot{bot_id}_bot"`` (Bot API:
        bot usernames must end in "bot").
    """
    return {
        "id": bot_id,
        "is_bot": True,
        "first_name": BOT_FIRST_NAME,
        "username": f"bot{bot_id}_bot",
    }


def chat_member(user: dict[str, Any], status: str = "member", **fields: Any) -> dict[str, Any]:
    """Build a Bot API ChatMember object.

    The fields every variant requires are filled for "creator" (``is_anonymous``) and
    "kicked" (``until_date`` 0, meaning forever); "administrator" and "restricted" need
    their many ``can_*`` flags passed in ``fields``.

    Args:
        user: The member's User dict.
        status: One of "creator", "administrator", "member", "restricted", "left", "kicked".
        **fields: Extra ChatMember fields, which override the defaults.

    Returns:
        A ChatMember dict.
    """
    defaults: dict[str, Any] = {"creator": {"is_anonymous": False}, "kicked": {"until_date": 0}}
    return {"status": status, "user": user, **defaults.get(status, {}), **fields}


class UpdateFactory:
    """Builds Update dicts with increasing ``update_id`` and ``message_id``.

    Both counters start at a random base so that tests never rely on concrete ids, and
    they only grow, as Telegram's do (Bot API: Update.update_id).

    Args:
        bot_id: Bot that receives the updates; used for the bot user in callback queries and
            my_chat_member updates when those builders are given no ``bot_id``.
    """

    def __init__(self, *, bot_id: int = DEFAULT_BOT_ID) -> None:
        self.bot_id = bot_id
        self._update_id = random.randint(10_000_000, 900_000_000)
        self._message_id = random.randint(1, 100_000)

    def message(
        self,
        text: str,
        *,
        user_id: int,
        entities: list[dict[str, Any]] | None = None,
        **sender: Unpack[Sender],
    ) -> dict[str, Any]:
        """Build a text message update.

        Args:
            text: Message text.
            user_id: Sender's user id.
            entities: MessageEntity dicts (offsets and lengths in UTF-16 code units).
            **sender: Chat and sender details, see ``Sender``.

        Returns:
            An Update dict with ``message``.
        """
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._message_update(user_id, sender, content)

    def command(
        self, command: str, args: str = "", *, user_id: int, **sender: Unpack[Sender]
    ) -> dict[str, Any]:
        """Build a bot command message such as "/start ref42".

        Args:
            command: Command name, with or without the leading "/".
            args: Text after the command, separated from it by one space when not empty.
            user_id: Sender's user id.
            **sender: Chat and sender details, see ``Sender``.

        Returns:
            An Update dict whose message carries a ``bot_command`` entity over "/command".
        """
        slash_command = "/" + command.removeprefix("/")
        text = f"{slash_command} {args}" if args else slash_command
        entity = {
            "type": "bot_command",
            "offset": 0,
            "length": len(slash_command.encode("utf-16-le")) // 2,
        }
        return self.message(text, user_id=user_id, entities=[entity], **sender)

    def contact(
        self, phone_number: str, *, user_id: int, **sender: Unpack[Sender]
    ) -> dict[str, Any]:
        """Build a message in which the user shares their own contact.

        Args:
            phone_number: Phone number as Telegram sends it (digits, usually without "+").
            user_id: Sender's user id; also ``contact.user_id``, as for a shared own contact.
            **sender: Chat and sender details, see ``Sender``.

        Returns:
            An Update dict with ``message.contact``.
        """
        contact: dict[str, Any] = {
            "phone_number": phone_number,
            "first_name": sender.get("first_name", "Test"),
            "user_id": user_id,
        }
        if sender.get("last_name"):
            contact["last_name"] = sender["last_name"]
        return self._message_update(user_id, sender, {"contact": contact})

    def location(
        self, latitude: float, longitude: float, *, user_id: int, **sender: Unpack[Sender]
    ) -> dict[str, Any]:
        """Build a message with a location.

        Args:
            latitude: Degrees, -90 to 90.
            longitude: Degrees, -180 to 180.
            user_id: Sender's user id.
            **sender: Chat and sender details, see ``Sender``.

        Returns:
            An Update dict with ``message.location``.
        """
        location = {"latitude": latitude, "longitude": longitude}
        return self._message_update(user_id, sender, {"location": location})

    def web_app_data(
        self, data: str, button_text: str, *, user_id: int, **sender: Unpack[Sender]
    ) -> dict[str, Any]:
        """Build the service message a Web App sends through ``Telegram.WebApp.sendData``.

        Args:
            data: The data string the Web App sent (Bot API: WebAppData.data, up to 4096 bytes).
            button_text: Text of the keyboard button that opened the Web App.
            user_id: Sender's user id.
            **sender: Chat and sender details, see ``Sender``.

        Returns:
            An Update dict with ``message.web_app_data``.
        """
        web_app_data = {"data": data, "button_text": button_text}
        return self._message_update(user_id, sender, {"web_app_data": web_app_data})

    def callback_query(
        self,
        data: str,
        *,
        user_id: int,
        message_id: int | None = None,
        chat_id: int | None = None,
        message_text: str = "...",
        bot_id: int | None = None,
        **sender: Unpack[Sender],
    ) -> dict[str, Any]:
        """Build a press on an inline keyboard button of a message the bot sent.

        Args:
            data: The button's callback_data (Bot API: 1-64 bytes).
            user_id: Id of the user who pressed the button.
            message_id: Id of the bot's message; a fresh id when None.
            chat_id: Chat of that message; the user's private chat when None.
            message_text: Text of the bot's message.
            bot_id: Author of the message; the factory's bot when None.
            **sender: Details of the user who pressed, see ``Sender`` (its chat_id is ignored).

        Returns:
            An Update dict with ``callback_query``.
        """
        user = self._user(user_id, sender)
        chat = _chat(user_id if chat_id is None else chat_id, user)
        message = {
            "message_id": self._next_message_id() if message_id is None else message_id,
            "from": bot_user(bot_id or self.bot_id),
            "chat": chat,
            "date": int(time.time()) - 1,
            "text": message_text,
        }
        query = {
            "id": str(secrets.randbits(63)),
            "from": user,
            "message": message,
            # Bot API: chat_instance is a global id of the chat the message was sent in.
            "chat_instance": _chat_instance(chat["id"]),
            "data": data,
        }
        return {"update_id": self._next_update_id(), "callback_query": query}

    def my_chat_member(
        self,
        *,
        user_id: int,
        old_status: str = "member",
        new_status: str = "kicked",
        bot_id: int | None = None,
        **sender: Unpack[Sender],
    ) -> dict[str, Any]:
        """Build a change of the bot's own membership, e.g. a user blocking the bot.

        Args:
            user_id: User who made the change; the chat is their private chat unless
                ``chat_id`` is given in ``sender``.
            old_status: Bot's ChatMember status before ("member", "kicked", ...).
            new_status: Bot's status after; "kicked" in a private chat means blocked.
            bot_id: The bot; the factory's bot when None.
            **sender: Chat and user details, see ``Sender``.

        Returns:
            An Update dict with ``my_chat_member``.
        """
        user = self._user(user_id, sender)
        chat_id = sender.get("chat_id")
        the_bot = bot_user(bot_id or self.bot_id)
        change = {
            "chat": _chat(user_id if chat_id is None else chat_id, user),
            "from": user,
            "date": int(time.time()),
            "old_chat_member": chat_member(the_bot, old_status),
            "new_chat_member": chat_member(the_bot, new_status),
        }
        return {"update_id": self._next_update_id(), "my_chat_member": change}

    def _message_update(
        self, user_id: int, sender: Sender, content: dict[str, Any]
    ) -> dict[str, Any]:
        user = self._user(user_id, sender)
        chat_id = sender.get("chat_id")
        message = {
            "message_id": self._next_message_id(),
            "from": user,
            "chat": _chat(user_id if chat_id is None else chat_id, user),
            "date": int(time.time()),
            **content,
        }
        return {"update_id": self._next_update_id(), "message": message}

    @staticmethod
    def _user(user_id: int, sender: Sender) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": sender.get("first_name", "Test"),
        }
        for key in ("last_name", "username"):
            if sender.get(key):
                user[key] = sender[key]  # type: ignore[literal-required]
        language_code = sender.get("language_code", "en")
        if language_code:
            user["language_code"] = language_code
        return user

    def _next_update_id(self) -> int:
        self._update_id += 1
        return self._update_id

    def _next_message_id(self) -> int:
        self._message_id += 1
        return self._message_id


def _chat(chat_id: int, user: dict[str, Any]) -> dict[str, Any]:
    """Chat object: the user's private chat for positive ids, a supergroup otherwise."""
    if chat_id > 0:
        private = {key: user[key] for key in ("first_name", "last_name", "username") if key in user}
        return {"id": chat_id, "type": "private", **private}
    return {"id": chat_id, "type": "supergroup", "title": f"Test group {-chat_id}"}


def _chat_instance(chat_id: int) -> str:
    """Stable stand-in for Telegram's opaque chat_instance: same chat, same string."""
    digest = hashlib.sha256(f"chat_instance:{chat_id}".encode()).digest()
    return str(int.from_bytes(digest[:8], "big") >> 1)


def webapp_init_data(
    bot_token: str,
    user: dict[str, Any],
    *,
    auth_date: int | None = None,
    query_id: str | None = None,
) -> str:
    """Build Web App initData signed with a bot's token, as Telegram builds it.

    Source: https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app
    - secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token)
    - hash = hex(HMAC_SHA256(key=secret_key, msg=data_check_string)), where
      data_check_string is every other field as "key=value", sorted by key, joined by "\\n".

    Args:
        bot_token: Token of the bot that opened the Web App.
        user: User dict (``id``, ``first_name``, ...), sent JSON-encoded.
        auth_date: Unix seconds (UTC) when the Web App was opened; now when None.
        query_id: answerWebAppQuery session id, omitted when None.

    Returns:
        The query string a Web App reads from ``Telegram.WebApp.initData``.
    """
    fields = {
        "auth_date": str(int(time.time()) if auth_date is None else auth_date),
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
    }
    if query_id is not None:
        fields["query_id"] = query_id
    data_check_string = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret_key = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret_key, data_check_string.encode(), hashlib.sha256).hexdigest()
    # Telegram percent-encodes like encodeURIComponent (spaces as %20, not "+").
    return urlencode(fields, quote_via=quote)
