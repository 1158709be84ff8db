"""Bot API methods that send, copy and edit messages, and the files sent with them."""

from __future__ import annotations

import time
import zlib
from typing import Any

from core.testing.botapi._state import StandInState, TelegramError, UploadedFile, resolve_chat
from core.testing.updates import bot_user

__all__ = ["CAPTION_LIMIT", "MESSAGE_TEXT_LIMIT", "MessageMethods"]

MESSAGE_TEXT_LIMIT = 4096
"""Bot API: sendMessage.text, 1-4096 characters after entities parsing."""
CAPTION_LIMIT = 1024
"""Bot API: sendPhoto.caption / sendDocument.caption, 0-1024 characters after entities parsing."""
_NOT_COPIED = ("message_id", "from", "chat", "date", "edit_date", "reply_markup")


class MessageMethods(StandInState):
    """Handlers of the methods that send and edit messages, as ``_api_<lowercased name>``."""

    # ---- Bot API methods: _api_<lowercased name>(bot_id, params) -> result

    def _api_sendmessage(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        content = {"text": _message_text(params), **_pick(params, "entities")}
        return self._send(bot_id, chat, params, content)

    def _api_sendphoto(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        photo = self._input_file(params.get("photo"), "photos", "photo")
        content = {"photo": [{**photo, "width": 800, "height": 600}], **_caption(params)}
        return self._send(bot_id, chat, params, content)

    def _api_senddocument(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        document = self._input_file(params.get("document"), "documents", "document")
        return self._send(bot_id, chat, params, {"document": document, **_caption(params)})

    def _api_sendvideo(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        video = self._input_file(params.get("video"), "videos", "video")
        content = {"video": {**video, "width": 1280, "height": 720, "duration": 1}}
        return self._send(bot_id, chat, params, {**content, **_caption(params)})

    def _api_sendlocation(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        location = {"latitude": params.get("latitude"), "longitude": params.get("longitude")}
        return self._send(bot_id, chat, params, {"location": location})

    def _api_sendcontact(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        contact = _pick(params, "phone_number", "first_name", "last_name", "vcard")
        return self._send(bot_id, chat, params, {"contact": contact})

    def _api_copymessage(self, bot_id: int, params: dict[str, Any]) -> dict[str, int]:
        chat = resolve_chat(params)
        source = self._copy_source(bot_id, params, params.get("message_id"))
        message = self._send(bot_id, chat, params, {**source, **_caption(params)})
        return {"message_id": message["message_id"]}  # Bot API: copyMessage returns a MessageId

    def _api_copymessages(self, bot_id: int, params: dict[str, Any]) -> list[dict[str, int]]:
        chat = resolve_chat(params)
        message_ids = params.get("message_ids")
        if not isinstance(message_ids, list) or not 1 <= len(message_ids) <= 100:
            raise TelegramError(400, "Bad Request: message_ids must hold 1-100 ids")
        copies = []
        for message_id in sorted(message_ids):  # Bot API: identifiers in strictly increasing order
            source = self._copy_source(bot_id, params, message_id)
            copies.append({"message_id": self._send(bot_id, chat, {}, source)["message_id"]})
        return copies

    def _copy_source(self, bot_id: int, params: dict[str, Any], message_id: Any) -> dict[str, Any]:
        """The content of the message being copied: a message the stand-in sent, else a stub."""
        if not isinstance(message_id, int):
            raise TelegramError(400, "Bad Request: message identifier is not specified")
        source_chat = resolve_chat({"chat_id": params.get("from_chat_id")})
        original = self._messages.get((bot_id, source_chat["id"], message_id), {})
        kept = {k: v for k, v in original.items() if k not in _NOT_COPIED}
        return kept or {"text": f"copy of message {message_id} of chat {source_chat['id']}"}

    def _api_editmessagetext(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any] | bool:
        changes = {"text": _message_text(params), **_pick(params, "entities")}
        return self._edit(bot_id, params, changes, replaced=("entities",))

    def _api_editmessagecaption(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any] | bool:
        return self._edit(
            bot_id, params, _caption(params), replaced=("caption", "caption_entities")
        )

    def _api_editmessagereplymarkup(
        self, bot_id: int, params: dict[str, Any]
    ) -> dict[str, Any] | bool:
        return self._edit(bot_id, params, {}, replaced=())

    # ---- helpers

    def _send(
        self, bot_id: int, chat: dict[str, Any], params: dict[str, Any], content: dict[str, Any]
    ) -> dict[str, Any]:
        self._last_message_id[(bot_id, chat["id"])] += 1
        message_id = self._last_message_id[(bot_id, chat["id"])]
        message = {
            "message_id": message_id,
            "from": bot_user(bot_id),
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        message.update(_inline_markup(params))
        self._messages[(bot_id, chat["id"], message_id)] = message
        return message

    def _edit(
        self,
        bot_id: int,
        params: dict[str, Any],
        changes: dict[str, Any],
        replaced: tuple[str, ...],
    ) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            return True  # Bot API: edits of inline messages return True
        chat = resolve_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise TelegramError(400, "Bad Request: message identifier is not specified")
        key = (bot_id, chat["id"], message_id)
        # A message the stand-in never sent (e.g. from UpdateFactory) is edited as if it had.
        original = self._messages.get(key) or {
            "message_id": message_id,
            "from": bot_user(bot_id),
            "chat": chat,
            "date": int(time.time()),
        }
        message = {
            name: value
            for name, value in original.items()
            if name not in (*replaced, "reply_markup")
        }
        message.update(changes, edit_date=int(time.time()), **_inline_markup(params))
        self._messages[key] = message
        return message

    def _input_file(self, value: Any, folder: str, kind: str) -> dict[str, Any]:
        if isinstance(value, UploadedFile):
            number = len(self._files) + 1
            suffix = value.filename.rpartition(".")[2] if "." in value.filename else "bin"
            file = {
                "file_id": f"{kind}-{number}-{zlib.crc32(value.content):08x}",
                "file_unique_id": f"u{number}",
                "file_size": len(value.content),
                "file_path": f"{folder}/file_{number}.{suffix}",
            }
            self._files[file["file_id"]] = file
            self._file_contents[file["file_path"]] = value.content
            reference = {key: file[key] for key in ("file_id", "file_unique_id", "file_size")}
            if kind == "document":
                reference.update(file_name=value.filename, mime_type=value.content_type)
            return reference
        if isinstance(value, str) and value:  # a file_id or URL
            return {"file_id": value, "file_unique_id": f"u{zlib.crc32(value.encode()):08x}"}
        raise TelegramError(400, f"Bad Request: there is no {kind} in the request")


def _message_text(params: dict[str, Any]) -> str:
    text = params.get("text")
    # aiogram leaves out empty strings, so a missing text is an empty one; Telegram trims it.
    if not isinstance(text, str) or not text.strip():
        raise TelegramError(400, "Bad Request: message text is empty")
    if len(text) > MESSAGE_TEXT_LIMIT:
        raise TelegramError(400, "Bad Request: message is too long")
    return text


def _caption(params: dict[str, Any]) -> dict[str, Any]:
    if len(str(params.get("caption") or "")) > CAPTION_LIMIT:
        raise TelegramError(400, "Bad Request: message caption is too long")
    return _pick(params, "caption", "caption_entities")


def _inline_markup(params: dict[str, Any]) -> dict[str, Any]:
    # Bot API: Message.reply_markup is only ever an InlineKeyboardMarkup; reply keyboards
    # are not echoed back.
    markup = params.get("reply_markup")
    return (
        {"reply_markup": markup} if isinstance(markup, dict) and "inline_keyboard" in markup else {}
    )


def _pick(params: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: params[name] for name in names if params.get(name) is not None}
