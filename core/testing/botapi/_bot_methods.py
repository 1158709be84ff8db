"""Bot API methods about the bot and its chats: getMe, webhooks, getUpdates, commands, getFile."""

from __future__ import annotations

import json
import re
from typing import Any

from core.testing.botapi._state import StandInState, TelegramError, resolve_chat
from core.testing.updates import bot_user, chat_member

__all__ = ["GET_UPDATES_LIMIT", "SECRET_TOKEN_PATTERN", "BotMethods"]

SECRET_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""Bot API: setWebhook.secret_token, 1-256 characters, only A-Z, a-z, 0-9, _ and -."""
GET_UPDATES_LIMIT = 100
"""Bot API: getUpdates.limit, 1-100, default 100."""


class BotMethods(StandInState):
    """Handlers of the methods that do not send or edit messages, as ``_api_<lowercased name>``."""

    # ---- Bot API methods: _api_<lowercased name>(bot_id, params) -> result

    def _api_getme(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **bot_user(bot_id),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_setwebhook(self, bot_id: int, params: dict[str, Any]) -> bool:
        secret_token = params.get("secret_token")
        if secret_token is not None and not SECRET_TOKEN_PATTERN.fullmatch(str(secret_token)):
            raise TelegramError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates[bot_id].clear()
        if params.get("url"):
            self._webhooks[bot_id] = dict(params)
        else:  # Bot API: an empty url removes the webhook
            self._webhooks.pop(bot_id, None)
        return True

    def _api_deletewebhook(self, bot_id: int, params: dict[str, Any]) -> bool:
        return self._api_setwebhook(
            bot_id, {"drop_pending_updates": params.get("drop_pending_updates")}
        )

    def _api_getwebhookinfo(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        webhook = self._webhooks.get(bot_id, {})
        info: dict[str, Any] = {
            "url": webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates[bot_id]),
        }
        if webhook:
            info["max_connections"] = webhook.get("max_connections", 40)  # Bot API default
            if "allowed_updates" in webhook:
                info["allowed_updates"] = webhook["allowed_updates"]
        return info

    async def _api_getupdates(self, bot_id: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        if bot_id in self._webhooks:
            raise TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        queue = self._updates[bot_id]
        offset = int(params.get("offset") or 0)
        if offset < 0:  # Bot API: keep the last -offset updates, forget the rest
            del queue[: max(0, len(queue) + offset)]
        elif offset:  # Bot API: an offset above an update_id confirms that update
            queue[:] = [update for update in queue if update["update_id"] >= offset]
        limit = min(max(int(params.get("limit") or GET_UPDATES_LIMIT), 1), GET_UPDATES_LIMIT)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        # Telegram serves one getUpdates consumer per bot: a newer request ends
        # a pending one with 409 "Conflict: terminated by other getUpdates request".
        self._poll_generation[bot_id] += 1
        generation = self._poll_generation[bot_id]
        self._notify()
        await self._wait_until(
            lambda: bool(queue) or self._closing or self._poll_generation[bot_id] != generation,
            timeout,
        )
        if self._poll_generation[bot_id] != generation:
            raise TelegramError(409, "Conflict: terminated by other getUpdates request")
        return queue[:limit]

    def _api_setmycommands(self, bot_id: int, params: dict[str, Any]) -> bool:
        self._commands[_commands_key(bot_id, params)] = params.get("commands") or []
        return True

    def _api_deletemycommands(self, bot_id: int, params: dict[str, Any]) -> bool:
        self._commands.pop(_commands_key(bot_id, params), None)
        return True

    def _api_getmycommands(self, bot_id: int, params: dict[str, Any]) -> list[Any]:
        return self._commands.get(_commands_key(bot_id, params), [])

    def _api_getchat(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        no_gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **resolve_chat(params),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": no_gifts,
        }

    def _api_getchatmember(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        chat = resolve_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise TelegramError(400, "Bad Request: invalid user_id specified")
        user = (
            bot_user(bot_id)
            if user_id == bot_id
            else {"id": user_id, "is_bot": False, "first_name": "Test"}
        )
        return chat_member(user, **self._members.get((chat["id"], user_id), {"status": "member"}))

    def _api_getfile(self, bot_id: int, params: dict[str, Any]) -> dict[str, Any]:
        file = self._files.get(str(params.get("file_id")))
        if file is None:
            raise TelegramError(400, "Bad Request: invalid file_id")
        return file


def _commands_key(bot_id: int, params: dict[str, Any]) -> tuple[int, str, str]:
    scope = params.get("scope") or {"type": "default"}
    return bot_id, json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")
