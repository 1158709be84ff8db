"""Fixtures of the broadcast tests: tenants with subscribers, driven over the webhook and HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest_asyncio

ADMIN = 900000001  # the harness's default bot.admins


class Shop:
    """A started tenant enabling broadcast, and helpers to talk to it and read its tables."""

    def __init__(self, tenantry: Any, config: dict[str, Any]):
        self.h = tenantry
        self.config = config
        self.id = config["id"]
        self.schema = config["storage"]["schema"]
        self.bot_id = int(config["bot"]["token"].split(":")[0])

    @property
    def headers(self) -> dict[str, str]:
        return self.h.api_headers(self.id)

    def url(self, path: str) -> str:
        return f"/api/tenants/{self.id}/broadcast{path}"

    async def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """Run ``query`` with ``{s}`` replaced by the quoted tenant schema."""
        return await self.h.sql(query.replace("{s}", f'"{self.schema}"'), *args)

    async def add_subscribers(self, user_ids: range | list[int], language: str = "en") -> None:
        """Insert active subscribers directly (faster than one /start each)."""
        await self.sql(
            "INSERT INTO {s}.broadcast_subscribers (user_id, language_code, source)"
            " SELECT u, $2, 'import' FROM unnest($1::bigint[]) AS u",
            list(user_ids),
            language,
        )

    async def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("content", {"kind": "text", "text": "Hello"})
        response = await self.h.client.post(
            self.url("/campaigns/"), json=body, headers=self.headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def campaign(self, campaign_id: int) -> dict[str, Any]:
        response = await self.h.client.get(
            self.url(f"/campaigns/{campaign_id}"), headers=self.headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_status(
        self, campaign_id: int, status: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll the campaign until it is in ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            view = await self.campaign(campaign_id)
            if view["status"] == status:
                return view
            assert time.monotonic() < deadline, f"campaign {campaign_id} stayed {view}"
            await asyncio.sleep(0.1)

    async def wait_sent(
        self, campaign_id: int, at_least: int, timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.campaign(campaign_id)
            if view["counts"]["sent"] >= at_least:
                return view
            assert time.monotonic() < deadline, f"campaign {campaign_id}: {view['counts']}"
            await asyncio.sleep(0.05)

    async def deliveries(self, campaign_id: int) -> list[dict[str, Any]]:
        return await self.sql(
            "SELECT chat_id, status, attempts, claimed_by, error_code, error FROM {s}.broadcast_deliveries"
            " WHERE campaign_id = $1 ORDER BY chat_id",
            campaign_id,
        )


def copies(bot_api: Any, bot_id: int) -> list[Any]:
    """The successful copyMessage calls of one bot."""
    return [c for c in bot_api.calls("copyMessage", bot_id=bot_id) if c.error_code is None]


def sends(bot_api: Any, bot_id: int, method: str = "sendMessage") -> list[Any]:
    return [c for c in bot_api.calls(method, bot_id=bot_id) if c.error_code is None]


@pytest_asyncio.fixture
async def shop(tenantry: Any) -> Shop:
    """Tenant ``shop`` with broadcast at 30 messages per second."""
    config = tenantry.add_tenant("shop", features={"broadcast": {"rate_per_second": 30}})
    await tenantry.start()
    return Shop(tenantry, config)


async def wait_text(
    bot_api: Any, chat_id: int, start: str, timeout: float = 20.0, method: str = "sendMessage"
) -> Any:
    """Wait for a ``method`` call to ``chat_id`` whose text starts with ``start``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        for call in bot_api.calls(method, chat_id=chat_id):
            if str(call.params.get("text", "")).startswith(start):
                return call
        assert time.monotonic() < deadline, [
            c.params.get("text") for c in bot_api.calls(method, chat_id=chat_id)
        ]
        await asyncio.sleep(0.05)


def buttons(call: Any) -> list[tuple[str, str]]:
    """``(text, callback_data)`` of the inline keyboard of a recorded call."""
    markup = call.params.get("reply_markup") or {}
    return [
        (b["text"], b.get("callback_data", ""))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


def photo_update(
    updates: Any, user_id: int, *, media_group_id: str | None = None
) -> dict[str, Any]:
    """A photo message update (optionally part of an album), shaped as Telegram sends it."""
    update = updates.message("x", user_id=user_id)
    message = update["message"]
    del message["text"]
    message["photo"] = [
        {
            "file_id": f"photo-{message['message_id']}",
            "file_unique_id": f"u{message['message_id']}",
            "width": 800,
            "height": 600,
        }
    ]
    message["caption"] = "New menu"
    if media_group_id:
        message["media_group_id"] = media_group_id
    return update
