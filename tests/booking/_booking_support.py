"""Tenant blocks and helpers shared by the booking tests (imported by name, not a conftest)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")
ADMIN = 900000001


def restaurant(**overrides: Any) -> dict[str, Any]:
    """A ``features.booking`` block for a small restaurant (kind: tables)."""
    block: dict[str, Any] = {
        "kind": "tables",
        "tables": [
            {"id": "t1", "seats": 2, "zone": "hall"},
            {"id": "t2", "seats": 4, "zone": "hall", "combinable_with": ["t3"]},
            {"id": "t3", "seats": 4, "zone": "hall"},
        ],
        "opening_hours": dict.fromkeys(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "12:00-23:00"
        ),
        "slot_step_minutes": 30,
        "stay_minutes": 120,
        "min_notice_minutes": 60,
        "days_ahead": 30,
        "cancellation_cutoff_minutes": 120,
        "reminder_minutes": 120,
        "max_party_size": 12,
    }
    block.update(overrides)
    return block


def salon(**overrides: Any) -> dict[str, Any]:
    """A ``features.booking`` block for a salon (kind: services)."""
    block: dict[str, Any] = {
        "kind": "services",
        "staff": [{"id": "anna", "name": "Anna"}, {"id": "boris", "name": "Boris"}],
        "services": [
            {
                "id": "haircut",
                "name": "Haircut",
                "duration_minutes": 60,
                "price": 150000,
                "staff": ["anna", "boris"],
            },
            {
                "id": "color",
                "name": "Coloring",
                "duration_minutes": 120,
                "price": 400000,
                "staff": ["anna"],
            },
        ],
        "opening_hours": dict.fromkeys(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "10:00-20:00"
        ),
        "slot_step_minutes": 60,
        "min_notice_minutes": 60,
    }
    block.update(overrides)
    return block


def add_restaurant(tenantry: Any, tenant_id: str = "filin", **overrides: Any) -> dict[str, Any]:
    """Write a restaurant tenant (Europe/Moscow) whose booking block is ``restaurant(**overrides)``."""
    extra = {
        k: overrides.pop(k)
        for k in ("statuses", "texts", "locale", "bot", "webapp")
        if k in overrides
    }
    return tenantry.add_tenant(
        tenant_id, timezone="Europe/Moscow", features={"booking": restaurant(**overrides)}, **extra
    )


def add_salon(tenantry: Any, tenant_id: str = "glow", **overrides: Any) -> dict[str, Any]:
    """Write a salon tenant (Europe/Moscow) whose booking block is ``salon(**overrides)``."""
    extra = {
        k: overrides.pop(k)
        for k in ("statuses", "texts", "locale", "bot", "webapp")
        if k in overrides
    }
    return tenantry.add_tenant(
        tenant_id, timezone="Europe/Moscow", features={"booking": salon(**overrides)}, **extra
    )


def future_day(days: int = 2) -> date:
    """A local (Moscow) date ``days`` ahead of today."""
    return datetime.now(MOSCOW).date() + timedelta(days=days)


def at(day: date, hhmm: str) -> datetime:
    """Aware Moscow datetime of ``day`` at ``HH:MM``."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC, as the API returns times."""
    return moment.astimezone(UTC).isoformat()


def bot_id(config: dict[str, Any]) -> int:
    """The bot id of a tenant config dict."""
    return int(config["bot"]["token"].split(":")[0])


def schema(config: dict[str, Any]) -> str:
    """The tenant's schema."""
    return config["storage"]["schema"]


def booking_body(start: datetime, **fields: Any) -> dict[str, Any]:
    """A create-booking body at ``start``."""
    body: dict[str, Any] = {
        "starts_at": start.isoformat(),
        "customer_name": "Anna",
        "phone": "+79990001122",
    }
    body.update(fields)
    return body


def buttons(call: Any) -> list[dict[str, Any]]:
    """Every inline button of a recorded call's reply_markup, row by row."""
    markup = call.params.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def press(call: Any, text: str) -> str:
    """The callback_data of the button labelled ``text`` in a recorded call.

    Raises:
        AssertionError: no such button (the labels present are listed).
    """
    for button in buttons(call):
        if button["text"] == text:
            data = button["callback_data"]
            assert len(data.encode()) <= 64, data
            return data
    raise AssertionError(f"no button {text!r}; buttons: {[b['text'] for b in buttons(call)]}")


class BotUser:
    """One Telegram user talking to a tenant's bot through the webhook."""

    def __init__(
        self,
        tenantry: Any,
        updates: Any,
        bot_api: Any,
        tenant_id: str,
        config: dict[str, Any],
        user_id: int,
    ):
        self.tenantry = tenantry
        self.updates = updates
        self.bot_api = bot_api
        self.tenant_id = tenant_id
        self.bot_id = bot_id(config)
        self.user_id = user_id

    def sent(self) -> list[Any]:
        """sendMessage calls to this user so far."""
        return self.bot_api.calls("sendMessage", bot_id=self.bot_id, chat_id=self.user_id)

    async def _post(self, update: dict[str, Any]) -> Any:
        before = len(self.sent())
        response = await self.tenantry.post_update(self.tenant_id, update)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True, "duplicate": False}
        replies = self.sent()[before:]
        return replies[-1] if replies else None

    async def command(self, command: str, args: str = "") -> Any:
        """Send ``/command args``; return the last reply."""
        return await self._post(self.updates.command(command, args, user_id=self.user_id))

    async def say(self, text: str) -> Any:
        """Send a text message; return the last reply."""
        return await self._post(self.updates.message(text, user_id=self.user_id))

    async def share_contact(self, phone: str) -> Any:
        """Share the user's contact; return the last reply."""
        return await self._post(self.updates.contact(phone, user_id=self.user_id))

    async def tap(self, call: Any, text: str) -> Any:
        """Press the button ``text`` of ``call``'s message; return the last reply."""
        data = press(call, text)
        return await self._post(
            self.updates.callback_query(
                data,
                user_id=self.user_id,
                bot_id=self.bot_id,
                message_text=call.params.get("text", ""),
            )
        )
