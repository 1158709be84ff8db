"""Tenants and helpers of the page tests (imported by name, not a conftest)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from core.testing.updates import webapp_init_data

MOSCOW = ZoneInfo("Europe/Moscow")
ADMIN = 900000001  # the harness's default bot.admins
PARTNER = 7001  # partner of the bakery
FLORIST = 7003  # partner of the flowers store
CUSTOMER = 5001

ALL_DAY = dict.fromkeys(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "10:00-23:00")


def add_restaurant(tenantry: Any, tenant_id: str = "filin", **fields: Any) -> dict[str, Any]:
    """A restaurant (tables in two zones) with live events, Europe/Moscow, English."""
    booking = {
        "kind": "tables",
        "tables": [
            {"id": "t1", "seats": 2, "zone": "hall"},
            {"id": "t2", "seats": 4, "zone": "hall"},
            {"id": "v1", "seats": 6, "zone": "veranda"},
        ],
        "opening_hours": ALL_DAY,
        "slot_step_minutes": 30,
        "stay_minutes": 120,
        "min_notice_minutes": 60,
        "days_ahead": 30,
        "max_party_size": 6,
    }
    fields.setdefault("locale", "en")
    return tenantry.add_tenant(
        tenant_id,
        timezone="Europe/Moscow",
        features={"booking": booking, "realtime": {}},
        **fields,
    )


def add_salon(tenantry: Any, tenant_id: str = "glow", **fields: Any) -> dict[str, Any]:
    """A salon (``kind: services``, two staff) with live events and confirmations, English."""
    booking = {
        "kind": "services",
        "staff": [{"id": "anna", "name": "Anna"}, {"id": "olga", "name": "Olga"}],
        "services": [
            {
                "id": "haircut",
                "name": "Haircut",
                "duration_minutes": 60,
                "price": 250000,
                "staff": ["anna", "olga"],
            },
            {"id": "coloring", "name": "Coloring", "duration_minutes": 120, "staff": ["anna"]},
        ],
        "opening_hours": ALL_DAY,
        "slot_step_minutes": 30,
        "min_notice_minutes": 60,
        "days_ahead": 30,
        "confirmation_required": True,
        "currency": "RUB",
    }
    fields.setdefault("locale", "en")
    return tenantry.add_tenant(
        tenant_id,
        timezone="Europe/Moscow",
        features={"booking": booking, "realtime": {}},
        **fields,
    )


def add_market(tenantry: Any, tenant_id: str = "market", **fields: Any) -> dict[str, Any]:
    """A marketplace with two stores (bakery, flowers) and live events, English."""
    orders = {
        "expire_after_minutes": 15,
        "max_active_orders_per_customer": 0,
        "stores": [
            {
                "id": "bakery",
                "name": "Bakery",
                "partners": [PARTNER],
                "pickup": True,
                "delivery": True,
                "delivery_fee": 15000,
                "min_order": 20000,
                "currency": "RUB",
            },
            {"id": "flowers", "name": "Flowers", "partners": [FLORIST], "pickup": True},
        ],
        "categories": [
            {"id": "bread", "store": "bakery", "name": "Bread", "position": 1},
            {"id": "bouquets", "store": "flowers", "name": "Bouquets"},
        ],
        "items": [
            {
                "sku": "baguette",
                "store": "bakery",
                "category": "bread",
                "name": "Baguette",
                "price": 12000,
            },
            {"sku": "rye", "store": "bakery", "category": "bread", "name": "Rye", "price": 9000},
            {
                "sku": "tulips",
                "store": "flowers",
                "category": "bouquets",
                "name": "Tulips",
                "price": 250000,
            },
        ],
    }
    fields.setdefault("locale", "en")
    fields.setdefault("limits", {"webapp_writes": "100/minute"})
    return tenantry.add_tenant(
        tenant_id,
        timezone="Europe/Moscow",
        features={"orders": orders, "realtime": {}},
        **fields,
    )


def future_day(days: int = 2) -> date:
    """A local (Moscow) date ``days`` ahead."""
    return datetime.now(MOSCOW).date() + timedelta(days=days)


THEME = {
    "bg_color": "#17212b",
    "secondary_bg_color": "#232e3c",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
}
"""Telegram's theme parameters (its dark theme's) in the fragment of :func:`webapp_url` with
``telegram=True``: the ones Telegram always sends (Bot API: ThemeParams)."""


def webapp_url(
    tenantry: Any,
    config: dict[str, Any],
    page: str,
    user_id: int,
    name: str,
    *,
    telegram: bool = False,
) -> str:
    """The WebApp ``page`` as Telegram opens it: init data signed with the bot token in the fragment.

    With ``telegram``, the fragment also carries Telegram's launch parameters
    (``tgWebAppVersion``, ``tgWebAppThemeParams``), so the page loads
    ``telegram-web-app.js`` (the tests' stand-in: ``new_page(telegram=True)``).
    """
    init = webapp_init_data(config["bot"]["token"], {"id": user_id, "first_name": name})
    fragment = f"tgWebAppData={quote(init, safe='')}"
    if telegram:
        theme = quote(json.dumps(THEME), safe="")
        fragment += f"&tgWebAppVersion=8.0&tgWebAppPlatform=android&tgWebAppThemeParams={theme}"
    return f"{tenantry.url}/web/{config['id']}/{page}#{fragment}"


async def no_overflow(page: Any) -> None:
    """Assert ``page`` fits its (phone) viewport's width: nothing scrolls sideways.

    Compared with the layout viewport (``clientWidth``): a mobile browser zooms
    out to show wider content, so ``innerWidth`` grows with the overflow.
    """
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url}: {widths[0]} px wide in a {widths[1]} px screen"


def link_in(text: str) -> str:
    """The sign-in link of a bot message."""
    match = re.search(r"https?://\S+/signin/link\?token=[A-Za-z0-9_-]+", text)
    assert match, text
    return match.group(0)


async def panel_link(
    tenantry: Any, updates: Any, bot_api: Any, config: dict[str, Any], command: str, user_id: int
) -> str:
    """Send ``/<command>`` as ``user_id`` through the webhook; return the sign-in link the bot answered."""
    bot_id = int(config["bot"]["token"].split(":")[0])
    response = await tenantry.post_update(config["id"], updates.command(command, user_id=user_id))
    assert response.status_code == 200, response.text
    [reply] = bot_api.calls("sendMessage", bot_id=bot_id, chat_id=user_id)[-1:]
    assert reply.params["link_preview_options"] == {"is_disabled": True}
    return link_in(reply.params["text"])


def press(call: Any, text: str) -> str:
    """The callback_data of the inline button labelled ``text`` in a recorded Bot API call."""
    markup = call.params.get("reply_markup") or {}
    found = [b for row in markup.get("inline_keyboard", []) for b in row]
    for button in found:
        if button["text"] == text:
            return button["callback_data"]
    raise AssertionError(f"no button {text!r}; buttons: {[b['text'] for b in found]}")


class Guest:
    """A Telegram user booking through the bot's webhook, as Telegram posts their updates."""

    def __init__(
        self, tenantry: Any, updates: Any, bot_api: Any, config: dict[str, Any], user_id: int
    ):
        self.tenantry, self.updates, self.bot_api = tenantry, updates, bot_api
        self.tenant_id = config["id"]
        self.bot_id = int(config["bot"]["token"].split(":")[0])
        self.user_id = user_id

    async def _post(self, update: dict[str, Any]) -> Any:
        before = len(self.bot_api.calls("sendMessage", bot_id=self.bot_id, chat_id=self.user_id))
        response = await self.tenantry.post_update(self.tenant_id, update)
        assert response.status_code == 200, response.text
        sent = self.bot_api.calls("sendMessage", bot_id=self.bot_id, chat_id=self.user_id)[before:]
        return sent[-1] if sent else None

    async def book(self, day: date, hhmm: str, guests: int, name: str, phone: str) -> Any:
        """/book, pick ``day`` and ``hhmm``, ``guests``, name and phone; return the summary with Confirm."""
        calendar = await self._post(self.updates.command("book", user_id=self.user_id))
        if str(day.day) not in str(calendar.params["reply_markup"]):
            calendar = await self.tap(calendar, "›")
        times = await self.tap(calendar, str(day.day))
        party = await self.tap(times, hhmm)
        await self.tap(party, str(guests))
        await self._post(self.updates.message(name, user_id=self.user_id))
        return await self._post(self.updates.contact(phone, user_id=self.user_id))

    async def tap(self, call: Any, text: str) -> Any:
        """Press the button ``text`` of ``call``'s message; return the last reply."""
        update = self.updates.callback_query(
            press(call, text),
            user_id=self.user_id,
            bot_id=self.bot_id,
            message_text=call.params.get("text", ""),
        )
        return await self._post(update)


async def place_order(
    tenantry: Any,
    config: dict[str, Any],
    store_id: str,
    item_id: int,
    quantity: int,
    user_id: int = CUSTOMER,
) -> dict[str, Any]:
    """A pickup order of ``quantity`` x item ``item_id`` through the orders API, as WebApp user ``user_id``.

    Returns:
        The created order (the API's answer body).

    Raises:
        AssertionError: the API did not answer 201.
    """
    init = webapp_init_data(config["bot"]["token"], {"id": user_id, "first_name": "Anna"})
    response = await tenantry.client.post(
        f"/api/tenants/{config['id']}/orders/orders",
        json={
            "store_id": store_id,
            "type": "pickup",
            "phone": "+79990001122",
            "items": [{"item_id": item_id, "quantity": quantity}],
        },
        headers={"X-Telegram-Init-Data": init},
    )
    assert response.status_code == 201, response.text
    return response.json()
