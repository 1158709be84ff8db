"""kill -9 the runtime polling a bot mid-batch: another runtime takes over within 10 s, and
every update is handled exactly once (none lost, none twice)."""

from __future__ import annotations

import asyncio
import signal
import time

from runtime_procs import kill_all, runtime_env, spawn_runtime

from core.testing.updates import UpdateFactory

USERS = list(range(5001, 5011))
HANGING_USER = 5006


async def test_kill_9_of_the_poller_mid_batch_loses_nothing_and_repeats_nothing(
    tenantry, tenantry_database_url, tenantry_redis_url
):
    config = tenantry.add_tenant(
        "filin", bot={"mode": "polling"}, features={"alpha": {}}, texts={"welcome": "polled"}
    )
    bot_id = int(config["bot"]["token"].split(":")[0])
    bot_api = tenantry.bot_api
    updates = UpdateFactory(bot_id=bot_id)
    # One batch: five /start, then the /hang that the first poller never finishes, then four more.
    batch = [
        updates.command("hang" if user == HANGING_USER else "start", user_id=user) for user in USERS
    ]
    for update in batch:
        bot_api.enqueue_update(bot_id, update)
    env = runtime_env(tenantry, tenantry_database_url, tenantry_redis_url)
    first = second = None
    try:
        first, _ = await spawn_runtime({**env, "CRASH_HANG": "1"})
        await bot_api.wait_for("sendMessage", bot_id=bot_id, count=5, timeout=20)
        second, _ = await spawn_runtime(env)
        await asyncio.sleep(0.5)
        answered = sorted(c.params["chat_id"] for c in bot_api.calls("sendMessage", bot_id=bot_id))
        # The first poller is stuck on /hang: the batch is not confirmed, the second waits for the lock.
        assert answered == USERS[:5]
        first.send_signal(signal.SIGKILL)
        await first.wait()
        killed = time.monotonic()

        await bot_api.wait_for("sendMessage", bot_id=bot_id, count=len(USERS), timeout=15)
        took_over = time.monotonic() - killed
        assert took_over < 10, f"the second runtime took {took_over:.1f} s to take over"
        await asyncio.sleep(1.0)  # room for a wrong second delivery
        replies = bot_api.calls("sendMessage", bot_id=bot_id)
        assert sorted(c.params["chat_id"] for c in replies) == USERS
        hang_reply = [c for c in replies if c.params["chat_id"] == HANGING_USER]
        assert [c.params["text"] for c in hang_reply] == ["unhung"]
        schema = config["storage"]["schema"]
        rows = await tenantry.sql(f'SELECT telegram_id FROM "{schema}".users ORDER BY 1')
        assert [r["telegram_id"] for r in rows] == [u for u in USERS if u != HANGING_USER]
        # The batch was confirmed: the getUpdates that brings a later update has the offset past it.
        later = bot_api.enqueue_update(bot_id, updates.command("start", user_id=5099))
        await bot_api.wait_for("sendMessage", bot_id=bot_id, chat_id=5099, timeout=15)
        polls = bot_api.calls("getUpdates", bot_id=bot_id)
        offsets = [int(c.params.get("offset") or 0) for c in polls]
        assert batch[-1]["update_id"] + 1 in offsets
        assert later["update_id"] > batch[-1]["update_id"]
    finally:
        await kill_all(first, second)
