"""What the limit tests share: a restaurant and a shop, WebApp users, and the ``sleeper`` plugin.

Used by tests/test_security_limits.py (rate limits, caps per customer),
tests/test_security_limits_connections.py (the connection cap per tenant)
and tests/test_security_limits_requests.py (the webhook before the body,
init data, idempotency).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from litestar import Request, Response, post
from litestar.params import JSONBody

from core import hookimpl
from core.http.auth import TenantDep, require_api_key_or_webapp
from core.http.idempotency import idempotent_response
from core.testing.updates import webapp_init_data

MOSCOW = ZoneInfo("Europe/Moscow")
ANNA = {"id": 7001, "first_name": "Anna"}
IVAN = {"id": 7002, "first_name": "Ivan"}
ADMIN = 900000001  # the harness's default bot.admins
BOOKINGS = "/api/tenants/filin/booking/bookings"


def restaurant(**overrides: Any) -> dict[str, Any]:
    """A restaurant with enough tables that times, not tables, run out first."""
    block: dict[str, Any] = {
        "kind": "tables",
        "tables": [{"id": f"t{n}", "seats": 4} for n in range(1, 9)],
        "opening_hours": dict.fromkeys(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "10:00-23:00"
        ),
        "slot_step_minutes": 30,
        "stay_minutes": 60,
        "min_notice_minutes": 60,
        "days_ahead": 30,
    }
    block.update(overrides)
    return block


def add_restaurant(tenantry: Any, tenant_id: str = "filin", **fields: Any) -> dict[str, Any]:
    booking = fields.pop("booking", {})
    return tenantry.add_tenant(
        tenant_id, timezone="Europe/Moscow", features={"booking": restaurant(**booking)}, **fields
    )


def future_day(days: int = 3) -> date:
    return datetime.now(MOSCOW).date() + timedelta(days=days)


def at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)


def booking_body(start: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "starts_at": start.isoformat(),
        "customer_name": "Anna",
        "phone": "+79990001122",
        "party_size": 2,
        **fields,
    }


def webapp(config: dict[str, Any], user: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return {"X-Telegram-Init-Data": webapp_init_data(config["bot"]["token"], user, **kwargs)}


def bot_id(config: dict[str, Any]) -> int:
    return int(config["bot"]["token"].split(":")[0])


def schema(config: dict[str, Any]) -> str:
    return config["storage"]["schema"]


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    body = response.json()
    assert body["status"] == 429 and body["code"] == "ratelimit.exceeded"
    assert body["retry_after"] == retry_after and "limit" in body["detail"]


SHOP = {
    "stores": [{"id": "bakery", "name": "Bakery", "pickup": True}],
    "categories": [{"id": "bread", "store": "bakery", "name": "Bread"}],
    "items": [{"sku": "rye", "store": "bakery", "category": "bread", "name": "Rye", "price": 9000}],
    "max_active_orders_per_customer": 2,
}


async def _rye(tenantry: Any, config: dict[str, Any]) -> int:
    [row] = await tenantry.sql(f'SELECT id FROM "{schema(config)}".items')
    return row["id"]


class Sleeper:
    """A test plugin: ``POST /sleep`` holds one of the tenant's connections in ``pg_sleep``,
    and ``POST /once`` is an idempotent create whose first run hangs until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.first_started = asyncio.Event()
        self.runs = 0

    @hookimpl
    def register_route_handlers(self) -> list[Any]:
        plugin = self

        @post("/sleep", guards=[require_api_key_or_webapp], status_code=200)
        async def sleep(tenant: TenantDep, data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
            # The tenant id in a comment tells the tenants' sleeps apart in pg_stat_activity.
            await tenant.db.fetchval(
                f"SELECT pg_sleep($1) /* sleeper:{tenant.id} */", data["seconds"]
            )
            return {"slept": data["seconds"]}

        @post("/once", guards=[require_api_key_or_webapp])
        async def once(tenant: TenantDep, request: Request[Any, Any, Any]) -> Response[Any]:
            async def run() -> tuple[int, Any]:
                plugin.runs += 1
                number = plugin.runs
                if number == 1:  # the "crashed" request: never finishes on its own
                    plugin.first_started.set()
                    await plugin.release.wait()
                return 201, {"run": number}

            return await idempotent_response(request, tenant, "sleeper.once", run, pending_ttl=1)

        return [sleep, once]
