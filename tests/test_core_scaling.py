"""Two runtimes on the same PostgreSQL, Redis and tenants folder, as ops run them to scale out."""

from __future__ import annotations

import asyncio

from core.runtime.plugins import build_plugin_manager
from core.runtime.runtime import Runtime
from core.runtime.settings import RuntimeSettings


def runtime_for(tenantry, sample, public_url: str = "http://127.0.0.1:1") -> Runtime:
    settings = RuntimeSettings(
        tenants_dir=tenantry.tenants_dir,
        data_dir=tenantry.data_dir,
        database_url=tenantry.database_url,
        redis_url=tenantry.redis_url,
        bot_api_url=tenantry.bot_api.base_url,
        public_url=public_url,
        secret_key=tenantry.secret_key,
        queue_name=f"tenantry-test-{tenantry.run_id}",
        # The harness's per-run control schema (dropped at teardown), not the shared ``tenantry``.
        control_schema=tenantry.control_schema,
        watch=False,
        pool_min_size=1,
        pool_max_size=4,
    )
    return Runtime(settings, build_plugin_manager(extra=[("sample", sample)]))


async def test_two_runtimes_migrate_once_and_run_a_keyed_job_once(tenantry, sample):
    config = tenantry.add_tenant("filin", features={"sample": {}})
    first, second = runtime_for(tenantry, sample), runtime_for(tenantry, sample)
    try:
        await asyncio.gather(first.start(), second.start())
        assert first.registry.get("filin").state == second.registry.get("filin").state == "running"
        schema = config["storage"]["schema"]
        applied = await tenantry.sql(
            f'SELECT plugin, version FROM "{schema}".tenantry_migrations ORDER BY 1, 2'
        )
        assert applied == [
            {"plugin": "core", "version": 1},
            {"plugin": "core", "version": 2},
            {"plugin": "sample", "version": 1},
        ]

        results = await asyncio.gather(
            first.registry.get("filin").enqueue("sample.record", key="nightly", source="first"),
            second.registry.get("filin").enqueue("sample.record", key="nightly", source="second"),
        )
        assert sorted(results) == [False, True]
        for _ in range(100):
            if sample.JOB_RUNS:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # give a second worker every chance to run it again
        assert len(sample.JOB_RUNS) == 1
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_scheduled_job_survives_a_restart(tenantry, sample):
    from datetime import UTC, datetime, timedelta

    tenantry.add_tenant("filin", features={"sample": {}})
    before = runtime_for(tenantry, sample)
    await before.start()
    try:
        at = datetime.now(UTC) + timedelta(seconds=2)
        assert await before.registry.get("filin").enqueue("sample.record", at=at, key="later", n=1)
    finally:
        await before.stop()
    assert sample.JOB_RUNS == []
    after = runtime_for(tenantry, sample)
    await after.start()
    try:
        for _ in range(100):
            if sample.JOB_RUNS:
                break
            await asyncio.sleep(0.1)
        assert sample.JOB_RUNS == [("filin", {"n": 1})]
    finally:
        await after.stop()


async def test_two_runtimes_poll_a_bot_through_one_of_them(tenantry, sample, updates):
    """Telegram allows one getUpdates consumer per bot: the Redis lock picks one runtime."""
    config = tenantry.add_tenant("filin", bot={"mode": "polling"}, texts={"welcome": "polled"})
    bot_id = int(config["bot"]["token"].split(":")[0])
    first, second = runtime_for(tenantry, sample), runtime_for(tenantry, sample)
    try:
        await asyncio.gather(first.start(), second.start())
        for user_id in (301, 302, 303):
            tenantry.bot_api.enqueue_update(bot_id, updates.command("start", user_id=user_id))
        replies = await tenantry.bot_api.wait_for("sendMessage", bot_id=bot_id, count=3, timeout=15)
        await asyncio.sleep(1.0)  # a second poller would deliver duplicates by now
        replies = tenantry.bot_api.calls("sendMessage", bot_id=bot_id)
        assert sorted(c.params["chat_id"] for c in replies) == [301, 302, 303]
        conflicts = [c for c in tenantry.bot_api.calls("getUpdates", bot_id=bot_id) if c.error_code]
        assert conflicts == [], "two runtimes polled the bot at once"
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_a_restart_does_not_register_an_unchanged_bot_again(tenantry, sample):
    """setWebhook / setMyCommands are sent once per registration, not at every start."""
    config = tenantry.add_tenant("filin", features={"sample": {}})
    bot_id = int(config["bot"]["token"].split(":")[0])
    first = runtime_for(tenantry, sample)
    await first.start()
    try:
        tenant = first.registry.get("filin")
        remembered = tenant.key("bot-registration", bot_id)
        for _ in range(100):  # the registration is done once it is remembered
            if await first.redis.exists(remembered):
                break
            await asyncio.sleep(0.05)
        assert await first.redis.exists(remembered)
        assert len(tenantry.bot_api.calls("setWebhook", bot_id=bot_id)) == 1
    finally:
        await first.stop()
    sent = len(tenantry.bot_api.calls("setMyCommands", bot_id=bot_id))
    again = runtime_for(tenantry, sample)
    await again.start()
    try:
        await asyncio.sleep(0.5)  # registration runs in the background
        assert again.registry.get("filin").state == "running"
        assert len(tenantry.bot_api.calls("setWebhook", bot_id=bot_id)) == 1
        assert len(tenantry.bot_api.calls("setMyCommands", bot_id=bot_id)) == sent
    finally:
        await again.stop()
    # What a runtime would register changed (another public URL): it is sent again.
    other = runtime_for(tenantry, sample, public_url="http://127.0.0.1:2")
    await other.start()
    try:
        calls = await tenantry.bot_api.wait_for("setWebhook", bot_id=bot_id, count=2)
        assert calls[-1].params["url"] == "http://127.0.0.1:2/webhook/filin"
    finally:
        await other.stop()


async def test_three_runtimes_run_a_job_a_cron_tick_and_the_events_relay_once(tenantry, sample):
    from datetime import UTC, datetime

    tenantry.add_tenant("filin", features={"sample": {}})
    runtimes = [runtime_for(tenantry, sample) for _ in range(3)]
    try:
        await asyncio.gather(*(r.start() for r in runtimes))
        tenants = [r.registry.get("filin") for r in runtimes]

        # A keyed job queued by all three runs once.
        queued = await asyncio.gather(
            *(t.enqueue("sample.record", key="once", source=n) for n, t in enumerate(tenants))
        )
        assert sorted(queued) == [False, False, True]
        # All three workers fire the same minute's cron tick: the leap-day job runs once.
        leap_day = datetime(2028, 2, 29, 0, 0, 30, tzinfo=UTC)
        await asyncio.gather(*(r.jobs.tick(leap_day) for r in runtimes))
        for _ in range(100):
            if len(sample.JOB_RUNS) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for a second run
        assert len(sample.JOB_RUNS) == 2
        runs = sorted((kwargs for _, kwargs in sample.JOB_RUNS), key=len)
        assert runs[0] == {}, "the cron job (no arguments) ran once"
        assert runs[1]["source"] in (0, 1, 2), "the keyed job ran once"

        # Events published on each runtime go to the stream once (three relays) and are
        # handled once (three consumers of the group).
        published = []
        for n in range(30):
            tenant = tenants[n % 3]
            async with tenant.db.transaction() as conn:
                published.append(await tenant.publish("sample.created", {"n": n}, conn=conn))
        for _ in range(200):
            if len(sample.EVENT_IDS) >= len(published):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert sorted(sample.EVENT_IDS) == sorted(e.id for e in published)
        stream = runtimes[0].events.layout.key_for("filin")
        entries = await runtimes[0].redis.xrange(stream)
        ids = [fields.get("id") for _, fields in entries]
        ours = [i for i in ids if i in {e.id for e in published}]
        assert sorted(ours) == sorted(e.id for e in published), "an event was relayed twice"
        handled = [r.events.consumers.handled for r in runtimes]
        assert sum(handled) == len(published)
    finally:
        await asyncio.gather(*(r.stop() for r in runtimes))
