"""Fixtures of the shifts tests: a bar team tenant with categories, ranks and bonuses, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest_asyncio

from core.testing.updates import webapp_init_data

ADMIN = 900000001  # the harness's default bot.admins
MANAGER = 7101
ANNA = 7201
BORIS = 7202
STRANGER = 7999

SHIFTS_SETTINGS: dict[str, Any] = {
    "currency": "RUB",
    "categories": [
        {"id": "bar", "name": "Bar"},
        {"id": "tips", "name": "Tips", "commission": False},
    ],
    "commission": {
        "mode": "progressive",
        "rates": [
            {"from": 0, "to": 50000, "percent": 3},
            {"from": 50000, "to": 100000, "percent": 5},
            {"from": 100000, "percent": 7},
        ],
    },
    "hourly_rates": {"staff": 10000},
    "ranks": [
        {"id": "silver", "name": "Silver", "threshold": 100000, "bonus_percent": 1},
        {"id": "gold", "name": "Gold", "threshold": 300000},
    ],
    "bonuses": [
        {"id": "weekend", "name": "Weekend", "amount": 5000, "weekdays": ["sat", "sun"]},
        {"id": "big", "name": "Big night", "percent": 2, "min_sales": 200000},
    ],
}


class Crew:
    """The started ``crew`` tenant and helpers to talk to it."""

    def __init__(self, tenantry: Any, config: dict[str, Any]):
        self.h = tenantry
        self.config = config
        self.id = config["id"]
        self.schema = config["storage"]["schema"]
        self.token = config["bot"]["token"]
        self.bot_id = int(self.token.split(":")[0])
        self.base = f"/api/tenants/{self.id}/shifts"

    @property
    def tenant(self) -> Any:
        return self.h.runtime.registry.get(self.id)

    def api(self) -> dict[str, str]:
        return self.h.api_headers(self.id)

    def webapp(self, user_id: int) -> dict[str, str]:
        return {
            "X-Telegram-Init-Data": webapp_init_data(self.token, {"id": user_id, "first_name": "U"})
        }

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        return await self.h.client.request(
            method, self.base + path, headers=headers or self.api(), **kw
        )

    async def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = await self.call(method, path, **kw)
        assert response.status_code == status, response.text
        return response.json()

    async def employee(
        self, name: str, user_id: int | None, role: str = "staff", **extra: Any
    ) -> dict:
        body = {"name": name, "role": role, "user_id": user_id, **extra}
        return await self.ok("POST", "/employees", 201, json=body)

    async def table(self, name: str, order_by: str = "1") -> list[dict[str, Any]]:
        return await self.h.sql(f'SELECT * FROM "{self.schema}".{name} ORDER BY {order_by}')


# ---------------------------------------------------------------- the bot, as users drive it


def buttons(call: Any) -> dict[str, str]:
    markup = call.params.get("reply_markup") or {}
    return {b["callback_data"]: b["text"] for row in markup.get("inline_keyboard", []) for b in row}


async def say(crew: Crew, updates: Any, user_id: int, text: str) -> None:
    if text.startswith("/"):
        name, _, args = text[1:].partition(" ")
        update = updates.command(name, args, user_id=user_id, bot_id=crew.bot_id)
    else:
        update = updates.message(text, user_id=user_id, bot_id=crew.bot_id)
    response = await crew.h.post_update(crew.id, update)
    assert response.status_code == 200, response.text


async def press(crew, updates, user_id: int, data: str) -> None:
    update = updates.callback_query(data, user_id=user_id, message_id=1, bot_id=crew.bot_id)
    response = await crew.h.post_update(crew.id, update)
    assert response.status_code == 200, response.text


def last_text(bot_api, crew, chat_id: int, method: str = "sendMessage") -> str:
    calls = bot_api.calls(method, bot_id=crew.bot_id, chat_id=chat_id)
    assert calls, f"no {method} to {chat_id}"
    return calls[-1].params["text"]


LIMITS = {"api_writes": "1000/minute", "webapp_writes": "1000/minute", "bot_writes": "1000/minute"}


async def add_crew(
    tenantry: Any, tenant_id: str, shifts: dict[str, Any], *, start: bool = False, **fields: Any
) -> Crew:
    """Write tenant ``tenant_id`` with ``features.shifts = shifts`` and wait until it runs.

    ``start``: start the harness first (tests without the ``crew`` fixture).
    """
    config = tenantry.add_tenant(
        tenant_id, features={"shifts": shifts}, limits=fields.pop("limits", LIMITS), **fields
    )
    if start:
        await tenantry.start()
    await tenantry.wait_state(tenant_id, "running", timeout=20)
    return Crew(tenantry, config)


@pytest_asyncio.fixture
async def crew(tenantry: Any) -> Crew:
    """A started tenant ``crew`` with shifts enabled (en locale, UTC)."""
    return await add_crew(tenantry, "crew", SHIFTS_SETTINGS, start=True)
