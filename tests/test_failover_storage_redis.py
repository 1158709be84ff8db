"""Redis going away outside the outage under load: a lost claim reply, a polling bot.

An update whose claim Redis ran but whose reply was lost (the connection
broke first) got 503 and was never processed: its re-send is processed at
once, not refused while the claim's ``processing`` mark lasts. A polling bot
confirms nothing to Telegram while its Redis (a private ``redis-server`` of
the test, tests/_failover_storage_servers.py) is down and, once it is back,
the same runtime polls again and handles what came meanwhile, once each.
(tests/test_failover_storage.py stops Redis and PostgreSQL under webhook
load.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import redis.exceptions
from _failover_storage_servers import PrivateRedis, needs_servers
from redis.asyncio import Redis

from core.testing.plugin import TenantryHarness

pytestmark = needs_servers


async def test_a_claim_whose_reply_was_lost_is_given_back_at_the_resend(tenantry, updates, bot_api):
    # Redis ran the claim (the key says ``processing``) and the connection
    # broke before its reply came: the update got 503 and was never processed.
    # Its re-send must be processed now, not refused for IN_PROGRESS_TTL_SECONDS.
    tenantry.add_tenant("filin")
    await tenantry.start()
    ledger = tenantry.runtime.ledger
    run_claim = ledger._claim
    lost: list[str] = []

    async def claim_and_lose_the_reply(**call: Any) -> Any:
        answer = await run_claim(**call)
        if not lost:
            lost.append(call["keys"][0])
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        return answer

    ledger._claim = claim_and_lose_the_reply
    update = updates.command("start", user_id=7_100_000_001)
    refused = await tenantry.post_update("filin", update)
    assert (refused.status_code, refused.json()["code"]) == (503, "webhook.retry_later")
    check = Redis.from_url(tenantry.redis_url, decode_responses=True)
    try:
        assert await check.get(lost[0]) == "processing"
    finally:
        await check.aclose()
    resent = await tenantry.post_update("filin", update)
    assert (resent.status_code, resent.json()) == (200, {"ok": True, "duplicate": False})
    assert len(bot_api.calls("sendMessage", chat_id=7_100_000_001)) == 1
    again = await tenantry.post_update("filin", update)
    assert again.json() == {"ok": True, "duplicate": True}


async def test_a_polling_bot_keeps_polling_across_a_redis_restart(
    tmp_path, tenantry_database_url, updates, bot_api
):
    # The poller's lock, its updates' claims and their FSM state live in Redis:
    # while Redis is down nothing is confirmed to Telegram, and once it is back
    # the same runtime polls again and handles what came meanwhile, once each.
    folder = tmp_path / "redis"
    folder.mkdir()
    private_redis = PrivateRedis(folder)
    await asyncio.to_thread(private_redis.start)
    (tmp_path / "runtime").mkdir()
    harness = TenantryHarness(
        tmp_path / "runtime", tenantry_database_url, private_redis.url, bot_api
    )
    try:
        config = harness.add_tenant("filin", bot={"mode": "polling"})
        bot = int(config["bot"]["token"].split(":")[0])
        await harness.start(watch=False)
        bot_api.enqueue_update(bot, updates.command("start", user_id=7_200_000_001))
        await bot_api.wait_for("sendMessage", bot_id=bot, count=1, timeout=15)

        await asyncio.to_thread(private_redis.stop)
        during = [7_200_000_002, 7_200_000_003, 7_200_000_004]
        for user_id in during:
            bot_api.enqueue_update(bot, updates.command("start", user_id=user_id))
        await asyncio.sleep(2)  # the poller meets the outage (a lost lock, deferred updates)
        await asyncio.to_thread(private_redis.start)

        sent = await bot_api.wait_for("sendMessage", bot_id=bot, count=4, timeout=30)
        welcomes = Counter(int(call.params["chat_id"]) for call in sent)
        assert welcomes == Counter({7_200_000_001: 1, **dict.fromkeys(during, 1)})
        rows = await harness.sql(
            f'SELECT telegram_id FROM "{config["storage"]["schema"]}".users ORDER BY telegram_id'
        )
        assert [r["telegram_id"] for r in rows] == [7_200_000_001, *during]
    finally:
        await harness.stop()
        await harness.cleanup()
        private_redis.kill()
